"""Human-readable output. Machine output is each view's `to_json()`."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

# registry.views.iso is this function; importing the views would load pydantic for every command.
from attestations.intoto import rfc3339 as iso

if TYPE_CHECKING:
    from registry.views import (
        AttestResult,
        CheckpointView,
        DecisionView,
        GcReport,
        MirrorResult,
        ModelSummary,
        QuarantineView,
        WorkloadReviewView,
    )


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")  # pragma: no cover


def dumps(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False)


def _table(rows: Sequence[Sequence[str]], headers: Sequence[str]) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def mirror_text(result: MirrorResult) -> str:
    cp = result.checkpoint
    stats = result.stats
    verb = "registered" if result.created else "already registered"
    rate = stats.bytes_total / stats.seconds / 1e9 if stats.seconds > 0 else 0.0
    lines = [
        f"{verb} {cp.ref}",
        f"  source   {cp.source.uri} @ {cp.source.commit}",
        f"  files    {stats.files}, {human_size(stats.bytes_total)}",
        f"  blobs    {stats.blobs_created} new, {stats.blobs_reused} already stored; "
        f"{human_size(stats.bytes_transferred)} transferred",
        f"  time     {stats.seconds:.2f} s ({rate:.2f} GB/s)",
    ]
    if result.scan is not None:
        flagged = [f for f in result.scan.report["files"] if f["verdict"] != "clean"]
        lines.append(
            f"  scan     {result.scan.report['verdict']}"
            + (f" ({len(flagged)} files flagged: modelctl scan {cp.ref})" if flagged else "")
        )
    if cp.quarantine:  # the same bytes (or one of its files) were quarantined before
        q = cp.quarantine
        lines.append(
            f"  QUARANTINED on arrival by {q.get('kind', 'checkpoint')} {q.get('digest', '')}: "
            f"{q['reason']}"
        )
    return "\n".join(lines)


def models_text(models: Sequence[ModelSummary]) -> str:
    """One row per checkpoint; one column per bound environment with its live status (the
    policy in force evaluated now: allowed, warn, denied or quarantined)."""
    if not models:
        return "no models yet: try `modelctl mirror SOURCE`"
    envs: list[str] = []
    for c in (c for m in models for c in m.checkpoints):
        envs += [e for e in c.environments if e not in envs]
    rows = [
        [
            m.name,
            c.digest[: len("sha256:") + 16],
            f"{c.source.uri}@{c.source.commit[:12]}",
            str(c.file_count),
            human_size(c.total_size),
            # The model's blobs, each counted once, on its first row.
            human_size(m.storage_bytes) if i == 0 else "",
            iso(c.created_at),
            *(str(c.environments.get(e, {}).get("status", "-")) for e in envs),
        ]
        for m in models
        for i, c in enumerate(m.checkpoints)
    ]
    headers = ["NAME", "CHECKPOINT", "SOURCE", "FILES", "SIZE", "STORED", "MIRRORED"]
    return _table(rows, headers + [e.upper() for e in envs])


def inspect_text(cp: CheckpointView) -> str:
    header = [
        f"name       {cp.name}",
        f"digest     {cp.digest}",
        f"source     {cp.source.uri}",
        f"commit     {cp.source.commit}",
        f"coverage   {cp.source.filter_text}",
    ]
    if cp.source.revisions:
        header.append(f"revisions  {', '.join(cp.source.revisions)}")
    # The same bytes as OCI artifacts (pushed as, mirrored from): docs/formats/identity.md.
    header += [
        f"oci        {o.ref}  ({o.origin}{f', tag {o.tag}' if o.tag else ''})" for o in cp.oci
    ]
    if cp.base_model:
        header.append(f"base model {cp.base_model} (the card's base_model:)")
    header += [
        f"mirrored   {iso(cp.created_at)}",
        f"files      {len(cp.files)}, {human_size(cp.total_size)}",
        f"scans      {len(cp.scans) or 'none yet'}",
        *[
            f"  {s.scanner} {s.version}: {s.verdict}{'' if s.attestation_id else ' (unattested)'}"
            for s in cp.scans
        ],
        f"attested   {len(cp.attestations) or 'none yet'}",
    ]
    header += [f"  {a.predicate_type}  {a.signer}  {iso(a.created_at)}" for a in cp.attestations]
    if cp.quarantine:
        q = cp.quarantine
        by = f" (by {q['kind']} {q['digest']})" if q.get("kind") else ""
        header.append(f"QUARANTINED since {q['since']}{by}: {q['reason']}")
    header += [
        f"decided    {d['environment']}: {'allowed' if d['allowed'] else 'denied'} "
        f"({d['policy']['name']}, {d['evaluated_at']})"
        for d in cp.decisions[-5:]
    ]
    header.append("")
    rows = [[f.path, str(f.size), f"sha256:{f.sha256}"] for f in cp.files]
    return "\n".join(header) + _table(rows, ["PATH", "SIZE", "SHA256"])


def attest_text(result: AttestResult) -> str:
    lines = [f"attested {result.checkpoint.ref}"]
    lines += [f"  {a.predicate_type}  by {a.signer}" for a in result.issued]
    return "\n".join(lines)


def scan_text(data: dict[str, Any], *, verbose: bool = False) -> str:
    files = data["files"]
    lines = []
    for f in files:
        # A backdoor scan's paragraph is shown whatever the verdict (clean says what was tried).
        summaries = [
            s
            for finding in f["findings"]
            if isinstance(s := (finding.get("evidence") or {}).get("summary"), str)
        ]
        if f["verdict"] == "clean" and not verbose and not summaries:
            continue
        lines.append(f"{f['verdict']:<11} {f['path']}")
        for finding in f["findings"]:
            where = f" [{finding['member']}]" if finding.get("member") else ""
            lines.append(
                f"    {finding['severity']:<8} {finding['rule']}{where}: {finding['message']}"
            )
        lines.extend(
            textwrap.fill(s, width=100, initial_indent="    ", subsequent_indent="    ")
            for s in summaries
        )
    clean = sum(1 for f in files if f["verdict"] == "clean")
    header = f"verdict {data['verdict']}: {len(files)} files, {clean} clean"
    if "name" in data:
        recorded = data.get("recorded", [])
        attested = sum(1 for r in recorded if r.get("attested"))
        header += f"\n{data['name']}@{data['digest']}: {len(recorded)} scanner runs recorded"
        header += (
            f", {attested} attested"
            if attested
            else " (not attested: set MODELCTL_SIGNING_KEY_PASSPHRASE)"
        )
    return "\n".join([header, *lines])


_STATUS_MARK = {"pass": "pass", "fail": "FAIL", "warn": "warn", "waived": "waived"}


def decision_text(d: DecisionView) -> str:
    verdict = "ALLOWED" if d.allowed else "DENIED"
    lines = [
        f"{verdict} {d.name}@{d.digest} in {d.environment} (policy {d.policy_name}, mode {d.mode})",
    ]
    if d.expires_at is not None:
        lines.append(f"  decision valid until {iso(d.expires_at)}")
    rows = [[_STATUS_MARK.get(c["status"], c["status"]), c["id"], c["message"]] for c in d.checks]
    lines.append(_table(rows, ["STATUS", "CHECK", "WHY"]))
    return "\n".join(lines)


table = _table  # for commands outside this module (tokens, audit)


def quarantine_text(q: QuarantineView) -> str:
    """A quarantine and everything it holds: every name, every checkpoint."""
    what = "manifest digest" if q.kind == "checkpoint" else "file"
    state = "" if q.active else " (released)"
    lines = [f"quarantined {what} {q.digest}{state}: {q.reason}"]
    if q.paths:
        lines.append(f"  file paths: {', '.join(q.paths)}")
    if q.covers:
        lines.append(f"  holds {len(q.covers)} checkpoint(s), under every name, now and later:")
        lines += [f"    {ref}" for ref in q.covers]
    else:
        lines.append(
            "  no checkpoint holds it yet: quarantined ahead of time, any checkpoint that "
            "arrives with it is quarantined on arrival"
        )
    return "\n".join(lines)


def release_text(q: QuarantineView) -> str:
    lines = [f"released {q.kind} {q.digest}: {q.release_reason}"]
    lines += [f"  {ref}: released" for ref in q.covers if not _held(ref, q)]
    lines += [f"  still quarantined: {held}" for held in q.still_quarantined_by]
    return "\n".join(lines)


def _held(ref: str, q: QuarantineView) -> bool:
    return any(held.startswith(f"{ref} by ") for held in q.still_quarantined_by)


def gc_text(report: GcReport) -> str:
    verb = "would delete" if report.dry_run else "deleted"
    lines = [
        f"{report.stored} blobs stored, {report.referenced} referenced; "
        f"{verb} {len(report.deleted)} ({human_size(report.bytes_freed)}), "
        f"marked {len(report.marked)}, {report.waiting} waiting out the grace, "
        f"{report.young} too young",
    ]
    lines += [f"  {verb} {b.digest} ({human_size(b.size)})" for b in report.deleted]
    if report.uploads_removed:
        removed = "would remove" if report.dry_run else "removed"
        lines.append(f"{removed} {len(report.uploads_removed)} leftover uploads")
    return "\n".join(lines)


def workload_reviews_text(answers: Sequence[WorkloadReviewView], skipped: Sequence[str]) -> str:
    """One line per object (`ALLOWED`/`DENIED kind ns/name: why`), its warnings indented."""
    lines: list[str] = []
    for a in answers:
        verdict = "ALLOWED" if a.allowed else "DENIED"
        lines.append(f"{verdict} {a.kind} {a.namespace}/{a.name} in {a.environment}: {a.message}")
        lines += [f"  warning: {w}" for w in a.warnings]
    if skipped:
        lines.append(f"not reviewed (nothing runs a model): {', '.join(sorted(set(skipped)))}")
    return "\n".join(lines) or "no objects in the manifest"
