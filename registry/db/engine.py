"""Engines, sessions and migrations. Nothing here runs at import time."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from registry.errors import StorageError

MIGRATIONS = Path(__file__).with_name("migrations")

#: The newest migration. Kept here so that an up-to-date database is recognised without
#: importing Alembic (a tenth of a second on every command); a test holds it equal to
#: Alembic's own head.
HEAD_REVISION = "0028"


def make_engine(url: str) -> Engine:
    """An engine for `url` (SQLite file or PostgreSQL through psycopg)."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    try:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": 30})
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(url, pool_pre_ping=True)
    except (SQLAlchemyError, ImportError) as exc:
        raise StorageError(f"bad database URL: {exc}") from exc
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers run while a mirror commits; foreign keys are off by default in SQLite.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def head_revision() -> str:
    from alembic.script import ScriptDirectory  # noqa: PLC0415 - Alembic costs a tenth of a second (see above)

    script = ScriptDirectory(str(MIGRATIONS))
    head = script.get_current_head()
    if head is None:  # pragma: no cover - the package always ships migrations
        raise StorageError("no database migrations found")
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
        return None if row is None else str(row[0])


#: PostgreSQL advisory lock held while migrating, so that two `modelctl migrate` runs (a
#: Kubernetes Job retried, two servers on SQLite's rule) upgrade once, one after the other.
MIGRATION_LOCK = 0x6D6F64656C63746C  # "modelctl"


def migrate(engine: Engine) -> str | None:
    """Bring the schema to the newest revision (a no-op when it is already there).

    Returns the revision the database was at before (None: empty). On PostgreSQL the upgrade
    runs under an advisory lock and re-reads the revision inside it, so concurrent callers
    migrate once.
    """
    try:
        before = current_revision(engine)
        if before == HEAD_REVISION:
            return before
        # Imported only when a migration is due: Alembic costs a tenth of a second per command.
        from alembic import command  # noqa: PLC0415
        from alembic.config import Config  # noqa: PLC0415

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
                row = (
                    conn.execute(text("SELECT version_num FROM alembic_version")).first()
                    if inspect(conn).has_table("alembic_version")
                    else None
                )
                before = None if row is None else str(row[0])
                if before == HEAD_REVISION:
                    return before
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
    except SQLAlchemyError as exc:
        raise StorageError(f"database migration failed: {exc.__class__.__name__}: {exc}") from exc
    return before


class SchemaOutOfDate(StorageError):
    """The database is not at this release's schema and will not be migrated implicitly."""


def require_current_schema(engine: Engine) -> None:
    """Refuse, in one line naming `modelctl migrate`, a database not at `HEAD_REVISION`.

    Servers and workers on a shared database call this instead of migrating: the schema moves
    once, by `modelctl migrate` (a deploy step), never by whichever process starts first.
    """
    try:
        found = current_revision(engine)
    except SQLAlchemyError as exc:
        reason = " ".join(str(getattr(exc, "orig", None) or exc).split())
        raise StorageError(f"cannot open the database: {reason}") from exc
    if found != HEAD_REVISION:
        at = "empty" if found is None else f"at revision {found}"
        raise SchemaOutOfDate(
            f"the database schema is {at}, this modelctl needs {HEAD_REVISION}: "
            "run `modelctl migrate` first"
        )


def session_factory(engine: Engine, info: dict[str, object] | None = None) -> sessionmaker[Session]:
    """`info` travels in every session (e.g. the transparency log that services append to)."""
    return sessionmaker(engine, expire_on_commit=False, info=info or {})


@contextmanager
def unit_of_work(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any error. Callers own this."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
