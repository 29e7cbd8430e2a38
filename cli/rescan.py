"""`modelctl rescan`: re-scan what was judged by older rules.

When a release changes a scanner's version or rule set, every checkpoint whose newest scan by
that scanner is older gets a scan job; the new verdicts (and the decisions they change) are
recorded like any other scan. `serve` and `worker` run the same sweep at start-up.
"""

from __future__ import annotations

from typing import Annotated

import typer

from cli.options import JsonOption, VerboseOption, emit, open_registry, state_of
from registry.views import RescanResult, StaleCheckpoint


def _line(item: StaleCheckpoint) -> str:
    changes = ", ".join(
        f"{s.scanner} {s.recorded_version}/{s.recorded_ruleset} -> "
        f"{s.current_version}/{s.current_ruleset}"
        for s in item.stale
    )
    if item.job_id is not None:
        state = f"queued as job {item.job_id}"
    elif item.already_queued:
        state = "a scan is already queued"
    else:
        state = "stale"
    return f"{item.ref}: {changes} ({state})"


def _summary(result: RescanResult) -> str:
    if not result.checkpoints:
        return "every checkpoint's newest scans are by the scanners this registry runs"
    lines = [_line(c) for c in result.checkpoints]
    if result.dry_run:
        lines.append(f"{len(result.checkpoints)} checkpoint(s) to re-scan (dry run: none queued)")
    else:
        lines.append(f"{result.queued} scan job(s) queued; `modelctl worker` runs them")
    return "\n".join(lines)


def rescan_command(
    ctx: typer.Context,
    scanners: Annotated[
        list[str] | None,
        typer.Option(
            "--scanner",
            help="Only this scanner (repeatable); default: the default set "
            "(the opt-in backdoor scanner only when named).",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be re-scanned; queue nothing.")
    ] = False,
    json_output: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Queue scans of every checkpoint whose newest scan predates the scanners in use."""
    state = state_of(ctx, json_output=json_output, verbose=verbose)
    with open_registry(state) as registry:
        result = registry.rescan(tuple(scanners or ()), dry_run=dry_run)
    emit(state, result.to_json(), _summary(result))
