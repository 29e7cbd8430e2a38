"""`modelctl migrate`: bring the database schema to this release's, once.

The deploy step for a shared database (PostgreSQL): run it (a Kubernetes Job, a release
script) before starting new servers and workers, which refuse an old schema. The embedded
SQLite default needs no step: every command migrates it on open.
"""

from __future__ import annotations

import typer

from cli.options import JsonOption, State, emit, state_of
from registry.errors import InputError, StorageError
from registry.settings import Settings


def migrate_command(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """Upgrade the database schema to this release (a no-op when it is current)."""
    # SQLAlchemy and Alembic load only for this command.
    from sqlalchemy.engine import make_url  # noqa: PLC0415

    from registry.db.engine import HEAD_REVISION, make_engine, migrate  # noqa: PLC0415

    state: State = state_of(ctx, json_output=json_output, verbose=False)
    if state.registry_url:
        raise InputError("migrate works on the registry's database: unset --registry")
    settings = Settings.from_env(home=state.home)
    if settings.embedded_database:
        try:
            settings.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise StorageError(f"cannot create {settings.home}: {exc.strerror}") from exc
    engine = make_engine(settings.database_url)
    try:
        before = migrate(engine)
    finally:
        engine.dispose()
    database = make_url(settings.database_url).render_as_string(hide_password=True)
    changed = before != HEAD_REVISION
    text = (
        f"migrated {database} from {before or 'an empty schema'} to {HEAD_REVISION}"
        if changed
        else f"{database} is already at {HEAD_REVISION}"
    )
    emit(
        state,
        {"database": database, "from": before, "to": HEAD_REVISION, "changed": changed},
        text,
    )
