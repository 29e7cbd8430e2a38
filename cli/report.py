"""`modelctl report --env ENV [--since DATE] [--format html] [--out FILE]`: for an auditor.

Gathering and rendering live in `registry.report` (the web UI's `/ui/report` shows the same
page); this command parses, calls and writes. HTML is one self-contained file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from cli.options import JsonOption, VerboseOption, open_registry, state_of
from registry.errors import InputError
from registry.fsutil import atomic_write
from registry.report.gather import gather, parse_since

REPORT_FORMATS = ("html", "pdf")


def report_command(
    ctx: typer.Context,
    env: Annotated[str, typer.Option("--env", help="The environment to report on.")],
    since: Annotated[
        str | None, typer.Option("--since", help="Only evidence from this date on (YYYY-MM-DD).")
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", help="html (self-contained) or pdf (the `pdf` extra).")
    ] = "html",
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the report here instead of stdout.")
    ] = None,
    json_output: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """An auditor's report: admitted checkpoints and their evidence, the policy, quarantines,
    and how the evidence maps to the EU AI Act and NIST AI RMF (not legal advice)."""
    state = state_of(ctx, json_output=json_output, verbose=verbose)
    if fmt not in REPORT_FORMATS:
        raise InputError(f"--format {fmt!r}: expected one of {', '.join(REPORT_FORMATS)}")
    start = parse_since(since)
    with open_registry(state) as registry:
        data = gather(registry, env, start)
    if fmt == "pdf":
        from registry.report.pdf import render_pdf  # noqa: PLC0415 - optional, slow import

        document = render_pdf(data)
    else:
        from registry.report.html import render_html  # noqa: PLC0415 - the template, on use

        document = render_html(data).encode()
    if out is not None:
        atomic_write(out, document)
        summary = {"environment": env, "admitted": len(data.admitted), "out": str(out)}
        typer.echo(
            json.dumps(summary)
            if state.json
            else f"wrote the {env} report ({len(data.admitted)} admitted checkpoint(s)) to {out}"
        )
        return
    sys.stdout.buffer.write(document)
    sys.stdout.buffer.flush()
