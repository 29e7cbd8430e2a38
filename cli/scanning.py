"""`modelctl scan TARGET`: a local file or folder like a linter, or a registry checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from attestations.verdicts import Severity
from cli import render
from cli.errors import refuse
from cli.options import JsonOption, VerboseOption, emit, open_registry, state_of
from registry.errors import InputError
from registry.scanners.backdoor.settings import (
    BUDGETS,
    DEFAULT_MAX_PARAMS,
    DEVICES,
    BackdoorSettings,
)
from registry.scanners.errors import ScanInputError
from registry.scanners.parallel import auto_jobs
from registry.scanners.runner import local_targets, merge, scan_targets

FAIL_ON_CHOICES = [s.value for s in Severity] + ["never"]


def _exceeds(findings_severities: list[str], fail_on: str) -> bool:
    if fail_on == "never":
        return False
    threshold = Severity(fail_on).rank
    return any(Severity(s).rank >= threshold for s in findings_severities)


def check_fail_on(fail_on: str) -> None:
    if fail_on not in FAIL_ON_CHOICES:
        raise InputError(f"--fail-on must be one of {', '.join(FAIL_ON_CHOICES)}")


def fail_on_reason(report: dict[str, Any], fail_on: str) -> str | None:
    """Why a scan report fails `--fail-on` (the worst finding first), or None."""
    found = [
        (Severity(f["severity"]).rank, f["severity"], f["rule"], file["path"])
        for file in report.get("files", [])
        for f in file.get("findings", [])
    ]
    if not _exceeds([severity for _, severity, _, _ in found], fail_on):
        return None
    threshold = Severity(fail_on).rank
    hits = sorted((f for f in found if f[0] >= threshold), reverse=True)
    _, severity, rule, path = hits[0]
    return (
        f"{len(hits)} finding(s) at or above --fail-on {fail_on} "
        f"(worst: {severity} {rule} in {path})"
    )


def scan(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="A local file or folder, or a registry REF.")],
    scanner: Annotated[
        list[str] | None, typer.Option("--scanner", help="Run only this scanner (repeatable).")
    ] = None,
    fail_on: Annotated[
        str,
        typer.Option(
            "--fail-on", help=f"Exit 1 on findings at or above: {', '.join(FAIL_ON_CHOICES)}."
        ),
    ] = "high",
    backdoor_max_params: Annotated[
        int,
        typer.Option(
            "--backdoor-max-params",
            help="backdoor scanner: refuse (unsupported) models with more parameters.",
        ),
    ] = DEFAULT_MAX_PARAMS,
    device: Annotated[
        str, typer.Option("--device", help="backdoor scanner: auto, cpu or cuda.")
    ] = "auto",
    seed: Annotated[int, typer.Option("--seed", help="backdoor scanner: the first seed.")] = 0,
    budget: Annotated[
        str,
        typer.Option(
            "--budget",
            help="backdoor scanner: fast, standard or thorough (coverage for time; recorded).",
        ),
    ] = "standard",
    base: Annotated[
        str | None,
        typer.Option(
            "--base",
            help="backdoor scanner: differential mode against this base model "
            "(a folder of safetensors weights, a GGUF file, or a folder holding one).",
            show_default=False,
        ),
    ] = None,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            "-j",
            help="Scan a local folder's files in this many processes "
            "(default: all cores, for 64 files or 64 MiB and more).",
            show_default=False,
        ),
    ] = None,
    json_output: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Scan for code that runs on load and malformed model files; never loads what it scans."""
    state = state_of(ctx, json_output=json_output, verbose=verbose)
    check_fail_on(fail_on)
    ids = tuple(scanner or ())
    if device not in DEVICES:
        raise InputError(f"--device must be one of {', '.join(DEVICES)}")
    if budget not in BUDGETS:
        raise InputError(f"--budget must be one of {', '.join(BUDGETS)}")
    if backdoor_max_params <= 0:
        raise InputError("--backdoor-max-params must be positive")
    if jobs is not None and jobs < 1:
        raise InputError("--jobs must be at least 1")
    if base is not None:
        from registry.scanners.backdoor.differential import (  # noqa: PLC0415 - scan-only
            BaseModelError,
            resolve_base,
        )

        try:
            resolve_base(base)
        except BaseModelError as exc:
            raise InputError(str(exc)) from exc
    backdoor = BackdoorSettings(
        max_params=backdoor_max_params, device=device, seed=seed, budget=budget, base=base
    )
    local = Path(target)
    data: dict[str, Any]
    if local.exists() or local.is_symlink():
        # Imported here: the catalog and the runner, which every other command, and `modelctl
        # --help`, would otherwise pay for at startup. The catalog imports each scanner module
        # only when a file may be its (registry/scanners/claims.py).
        from registry.scanners import catalog  # noqa: PLC0415

        try:
            file_scanners, folder_scanners = catalog.select(ids, backdoor=backdoor)
        except ScanInputError as exc:  # the scanners' own error, made the CLI's (exit 2)
            raise InputError(exc.message) from exc
        targets, refused = local_targets(local)
        processes = jobs or auto_jobs(targets)
        if processes > 1 and len(targets) > 1:
            catalog.preload([*file_scanners, *folder_scanners])  # once, before the fork
        report = merge(
            scan_targets(
                targets,
                file_scanners,
                # A single file meets only the folder scanners that take one (backdoor: a GGUF).
                folder_scanners
                if local.is_dir()
                else [s for s in folder_scanners if getattr(s, "single_file", False)],
                workers=processes,
                processes=processes,
            ),
            refused,
        )
        data = report.to_json()
    elif "/" in target and not target.startswith(("/", ".")):
        with open_registry(state) as registry:
            data = registry.scan(target, ids, backdoor=backdoor).to_json()
    else:
        raise InputError(f"{target}: no such file or folder, and not a registry reference")
    emit(state, data, render.scan_text(data, verbose=state.verbose))
    reason = fail_on_reason(data, fail_on)
    if reason is not None:
        refuse(reason)
