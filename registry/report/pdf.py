"""The auditor's report as PDF: the same page as `html`, laid out by WeasyPrint.

WeasyPrint is the optional `pdf` extra (it needs the system's Pango); without it `--format pdf`
exits 2 with one line naming the extra. It never fetches anything: the page holds no URL, and
the URL fetcher refuses every request in case one ever slips in.
"""

from __future__ import annotations

import warnings
from typing import Any, NoReturn

from attestations.errors import MissingDependencyError
from registry.report.gather import ReportData
from registry.report.html import render_html

PDF_HINT = "pip install 'modelctl[pdf]'"


def _no_fetching(url: str, *args: Any, **kwargs: Any) -> NoReturn:
    raise ValueError(f"the report fetches nothing (asked for {url[:80]!r})")


def render_pdf(data: ReportData) -> bytes:
    try:
        with warnings.catch_warnings():
            # WeasyPrint 70 warns, on import, that a future version will need HarfBuzz-Subset
            # (libharfbuzz-subset0); this one lays the page out without it.
            warnings.filterwarnings(
                "ignore", message="HarfBuzz-Subset", category=DeprecationWarning
            )
            import weasyprint  # type: ignore[import-untyped]  # noqa: PLC0415 - optional, slow
    except ImportError as exc:
        raise MissingDependencyError(f"PDF reports need WeasyPrint: {PDF_HINT}") from exc
    except OSError as exc:  # WeasyPrint is there, but not the system's Pango
        raise MissingDependencyError(f"PDF reports need Pango for WeasyPrint: {exc}") from exc
    document = weasyprint.HTML(string=render_html(data), url_fetcher=_no_fetching)
    pdf: bytes = document.write_pdf()
    return pdf
