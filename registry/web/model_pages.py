"""The model page's card, file browser and lineage: what the checkpoint page's "Model card"
and "Files" tabs show (`tab_context`), and the preview of one file
(`/ui/m/{ns}/{name}/{digest}/files/{sha256}`).

A file is named in the URL by its sha256 and found in the checkpoint's own file list
(`registry.service.read.files`): no part of a request is ever used as a path. The card's HTML
is sanitised in `registry.service.read.card` and is the only markup the templates mark safe.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from markupsafe import Markup
from sqlalchemy.orm import Session

from registry.blobs.base import BlobReader
from registry.db.engine import unit_of_work
from registry.db.models import Checkpoint
from registry.service import admission
from registry.service.read import card as read_card
from registry.service.read import checkpoint as read_checkpoint
from registry.service.read import files as read_files
from registry.web._plumbing import _checkpoint_url, _hex, _reader, _registry, page, render

router = APIRouter(include_in_schema=False)


def tab_context(
    session: Session, checkpoint: Checkpoint, tab: str, blobs: BlobReader, *, quarantined: bool
) -> dict[str, Any]:
    """What the checkpoint page's card and files tabs need (nothing for the other tabs)."""
    if tab == "files":
        return {"file_rows": read_files.file_rows(checkpoint)}
    if tab != "card":
        return {}
    if quarantined:
        return {"card": None, "card_withheld": True, "lineage": []}
    base = _checkpoint_url(
        checkpoint.model.namespace, checkpoint.model.name, checkpoint.manifest_digest
    )
    card = read_card.checkpoint_card(checkpoint, blobs, lambda sha: f"{base}/files/{sha}")
    return {
        "card": card,
        "card_html": Markup(card.html) if card is not None else "",  # noqa: S704 - sanitised by nh3 (service/read/card)
        "card_withheld": False,
        "card_limit": read_card.MAX_CARD_BYTES,
        "lineage": read_card.lineage(session, card.base_models) if card is not None else [],
    }


@router.get("/ui/m/{namespace}/{name}/{digest}/files/{sha256}")
@page
def file_page(request: Request, namespace: str, name: str, digest: str, sha256: str) -> Response:
    caller = _reader(request)
    registry = _registry(request)
    with unit_of_work(registry.sessions) as s:
        cp = read_checkpoint.get_checkpoint(s, namespace, name, _hex(digest))
        held = admission.active_quarantine(cp) is not None
        shown = read_files.preview(cp, sha256, registry.blobs, quarantined=held)
        return render(
            request,
            "file.html",
            caller,
            cp=cp,
            p=shown,
            limit=read_files.MAX_PREVIEW_BYTES,
        )
