"""The checkpoint page's headline: one sentence per environment naming the deciding cause in
words ("Denied in prod: `pytorch_model.bin` calls `os.system` (critical, pickle scanner)";
"Allowed in dev: all 13 checks pass").

The deciding check of a denial is the first failing one in the evaluation order
(`policies.evaluate`: quarantine, digest and malicious first). For a malicious verdict the
sentence names the worst untriaged finding behind it, with its evidence (the call a pickle
makes, the template line); otherwise the check's title and message. A sentence is a tuple of
parts, each plain text or code, so the template escapes every part and no markup is built here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from policies.evaluate import CheckResult, CheckStatus
from policies.titles import check_title
from registry.service.decide import EnvDecision
from registry.service.read.common import SEVERITIES

#: One part of a sentence: (text, is_code).
Part = tuple[str, bool]


@dataclass(frozen=True, slots=True)
class Headline:
    environment: str
    status: str  # denied | warn | allowed | quarantined
    parts: tuple[Part, ...]
    check_id: str | None  # the deciding check (None: allowed, or no policy bound)
    finding_id: str | None  # the finding that decides it, when one does

    @property
    def text(self) -> str:
        return "".join(text for text, _ in self.parts)


def _plain(text: str) -> Part:
    return (text, False)


def _code(text: str) -> Part:
    return (text, True)


def _short(value: Any, limit: int = 80) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def evidence_phrase(finding: Mapping[str, Any]) -> tuple[Part, ...]:
    """What a finding saw, in words: "calls `os.system('true')`", "line 3: `{{ ... }}`", or
    its message."""
    evidence = finding.get("evidence")
    ev = evidence if isinstance(evidence, dict) else {}
    name = ev.get("global") or ev.get("callee")
    if isinstance(name, str) and name:
        args = ev.get("args")
        call = name
        if isinstance(args, list) and args:
            shown = [json.dumps(a) if isinstance(a, str) else _short(a, 60) for a in args[:4]]
            call += "(" + ", ".join(_short(a, 60) for a in shown) + ")"
        return (_plain("calls "), _code(_short(call, 120)))
    line = ev.get("line")
    snippet = ev.get("snippet") or ev.get("text") or ev.get("template")
    if isinstance(line, int) and isinstance(snippet, str) and snippet:
        return (_plain(f"line {line}: "), _code(_short(snippet, 120)))
    return (_plain(_short(str(finding.get("message") or finding.get("rule") or "?"), 160)),)


def _worst(findings: Sequence[Mapping[str, Any]], ids: Sequence[str]) -> Mapping[str, Any] | None:
    wanted = set(ids)
    chosen = [f for f in findings if f.get("id") in wanted] or list(findings)
    if not chosen:
        return None

    def rank(f: Mapping[str, Any]) -> int:
        sev = f.get("severity")
        return SEVERITIES.index(sev) if sev in SEVERITIES else len(SEVERITIES)

    return max(chosen, key=rank)


def _finding_sentence(finding: Mapping[str, Any]) -> tuple[Part, ...]:
    return (
        _code(str(finding.get("path") or "?")),
        _plain(" "),
        *evidence_phrase(finding),
        _plain(f" ({finding.get('severity', '?')}, {finding.get('scanner', '?')} scanner)"),
    )


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def headline(
    env: EnvDecision,
    findings: Sequence[Mapping[str, Any]],
    *,
    quarantine: tuple[str, str] | None = None,
) -> Headline:
    """The sentence for one environment. `findings` are the checkpoint's findings (dicts with
    `id`, `path`, `scanner`, `severity`, `message`, `evidence`); `quarantine` is (actor,
    reason) when the checkpoint is held."""
    name = env.environment
    decision = env.decision
    if quarantine is not None:
        actor, reason = quarantine
        return Headline(
            name,
            "quarantined",
            (_plain(f"Denied in {name}: quarantined by {actor}: {_short(reason, 160)}"),),
            "quarantine",
            None,
        )
    if decision is None:
        return Headline(
            name,
            "denied",
            (_plain(f"Denied in {name}: no policy is bound to {name} (fail closed)"),),
            None,
            None,
        )
    checks = decision.checks
    failing = [c for c in checks if c.status is CheckStatus.FAIL]
    warnings = [c for c in checks if c.status is CheckStatus.WARN]
    if not decision.allowed:
        deciding = failing[0] if failing else (warnings[0] if warnings else None)
        more = len(failing) - 1 if failing else 0
        tail = (_plain(f"; {_plural(more, 'more failing check')}"),) if more > 0 else ()
        if deciding is None:  # denied with nothing failing: say so rather than invent a cause
            return Headline(name, "denied", (_plain(f"Denied in {name}"),), None, None)
        cause, fid = _cause(deciding, findings)
        return Headline(
            name, "denied", (_plain(f"Denied in {name}: "), *cause, *tail), deciding.id, fid
        )
    waived = [c for c in checks if c.status is CheckStatus.WAIVED]
    waived_note = f", {_plural(len(waived), 'check')} waived" if waived else ""
    if warnings or failing:
        first = (warnings or failing)[0]
        cause, fid = _cause(first, findings)
        n = len(warnings) + len(failing)
        return Headline(
            name,
            "warn",
            (_plain(f"Allowed in {name} with {_plural(n, 'warning')}: "), *cause),
            first.id,
            fid,
        )
    passing = len(checks) - len(waived)
    text = (
        f"Allowed in {name}: all {_plural(passing, 'check')} pass"
        if not waived
        else f"Allowed in {name}: {passing} of {_plural(len(checks), 'check')} pass{waived_note}"
    )
    return Headline(name, "allowed", (_plain(text),), None, None)


def _cause(
    check: CheckResult, findings: Sequence[Mapping[str, Any]]
) -> tuple[tuple[Part, ...], str | None]:
    """The words for a deciding check, and the finding behind it when there is one."""
    scanner = check.id.removeprefix("scans.") if check.id.startswith("scans.") else None
    verdictish = check.id == "malicious" or check.id.startswith("verdicts.")
    if verdictish or scanner is not None:
        untriaged = check.evidence.get("untriaged") if check.id == "malicious" else None
        pool = [
            f
            for f in findings
            if (scanner is None or f.get("scanner") == scanner)
            and f.get("state") != "false-positive"  # triaged: not what denies any more
        ]
        worst = _worst(pool, untriaged if isinstance(untriaged, list) else [])
        if worst is not None and (verdictish or str(check.message).find("verdict") >= 0):
            fid = worst.get("id")
            return _finding_sentence(worst), fid if isinstance(fid, str) else None
    return (_plain(f"{_short(check.message, 200)} ({check_title(check.id)})"),), None
