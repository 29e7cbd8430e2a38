"""Storage used per model: the bytes of the distinct blobs its checkpoints reference, and how
much of that another model references too. One definition, read by `modelctl models`, the API
(`storage_bytes`) and the web UI (the models list, its sort, the checkpoint page)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import Subquery, func, select
from sqlalchemy.orm import Session

from registry.db.models import Checkpoint, CheckpointFile


def _model_blobs(model_ids: Collection[int] | None = None) -> Subquery:
    """(model id, blob digest, size), each blob once per model: a blob that two checkpoints
    (or two paths) of one model hold is stored once, so it counts once. The model filter sits
    inside, before DISTINCT: SQLite would otherwise group every model's files per page."""
    stmt = select(Checkpoint.model_id, CheckpointFile.sha256, CheckpointFile.size).join(
        CheckpointFile, CheckpointFile.checkpoint_id == Checkpoint.id
    )
    if model_ids is not None:
        stmt = stmt.where(Checkpoint.model_id.in_(list(model_ids)))
    return stmt.distinct().subquery()


def storage_per_model(model_ids: Collection[int] | None = None) -> Subquery:
    """A subquery of (model_id, storage_bytes), every model's or only `model_ids`': what a
    query joins to sort by storage."""
    blobs = _model_blobs(model_ids)
    return (
        select(blobs.c.model_id, func.sum(blobs.c.size).label("storage_bytes"))
        .group_by(blobs.c.model_id)
        .subquery()
    )


def storage_by_model(session: Session, model_ids: Collection[int] | None = None) -> dict[int, int]:
    """Model id -> storage bytes (one query); only `model_ids` when given. A blob shared with
    another model counts for both: what `modelctl gc` could free if the model went, at most."""
    usage = storage_per_model(model_ids)
    rows = session.execute(select(usage.c.model_id, usage.c.storage_bytes))
    return {int(model_id): int(total or 0) for model_id, total in rows}


@dataclass(frozen=True, slots=True)
class ModelStorage:
    stored_bytes: int  # the model's distinct blobs
    blobs: int
    shared_bytes: int  # of those, the blobs another model's checkpoints reference too
    shared_blobs: int


def model_storage(session: Session, model_id: int) -> ModelStorage:
    """One model's storage and the part of it shared with other models (by blob digest)."""
    stored = storage_by_model(session, [model_id]).get(model_id, 0)
    own = _model_blobs([model_id])
    # Per blob of this model, through the sha256 index: does another model's file hold it?
    elsewhere = (
        select(CheckpointFile.id)
        .join(Checkpoint, Checkpoint.id == CheckpointFile.checkpoint_id)
        .where(CheckpointFile.sha256 == own.c.sha256, Checkpoint.model_id != model_id)
        .exists()
    )
    blobs, shared_blobs, shared_bytes = session.execute(
        select(
            func.count(),
            func.count().filter(elsewhere),
            func.coalesce(func.sum(own.c.size).filter(elsewhere), 0),
        )
    ).one()
    return ModelStorage(
        stored_bytes=stored,
        blobs=int(blobs),
        shared_bytes=int(shared_bytes),
        shared_blobs=int(shared_blobs),
    )
