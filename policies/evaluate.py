"""Pure evaluation: (policy, facts, now) -> Decision with every check's result.

Order: quarantine, digest and malicious (never waivable, deny in every mode), sources,
revisions, licenses, formats, required attestations, scans, verdicts, CEL rules; then
exceptions waive the waivable failures; then the mode turns failures into warnings (`warn`) or
records (`audit`).

Why this module is over 600 lines: it is the evaluation order above, one method per check
family on one `_Eval`, plus the CEL input; the order is the contract, and keeping it in one
file keeps it readable top to bottom.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from attestations.digests import Digest
from attestations.errors import InvalidInputError
from attestations.verdicts import Severity
from policies import cel_engine
from policies.containment import ContainmentProfile, ContainmentRequirement
from policies.facts import AttestationFact, Facts, FindingFact, ScanFact, ScannedFileFact
from policies.model import (
    HARD_CHECKS,
    PICKLE_BASED_FORMATS,
    REGISTRY_SIGNER,
    SEVERITIES,
    UNWAIVABLE_PREFIXES,
    VERDICTS,
    CertificateSigner,
    KeylessSigner,
    KeySigner,
    Mode,
    ModelPolicy,
    PickleBased,
    PolicyException,
    RegistrySigner,
    RequiredAttestation,
    ScanRequirement,
    Signer,
)

_PINNED = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
#: Severities of a malicious file's findings that make it malicious (and need a triage).
BLOCKING_SEVERITIES = frozenset({Severity.HIGH.value, Severity.CRITICAL.value})
#: Predicate types `modelctl attest` issues with the registry's key.
_REGISTRY_ATTESTED = frozenset(
    {"https://model_signing/signature/v1.0", "https://slsa.dev/provenance/v1"}
)
_UNKNOWN_LICENSES = frozenset({"", "unknown", "other", "noassertion", "none"})


class CheckStatus(enum.StrEnum):
    PASS = "pass"  # noqa: S105  a status, not a password
    FAIL = "fail"
    WARN = "warn"
    WAIVED = "waived"


@dataclass(frozen=True, slots=True)
class CheckResult:
    id: str
    status: CheckStatus
    message: str
    evidence: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    mode: Mode
    environment: str | None
    policy_name: str
    policy_digest: str
    checkpoint_digest: str
    checks: tuple[CheckResult, ...]
    evaluated_at: datetime
    expires_at: datetime | None
    exceptions_applied: tuple[str, ...]
    #: The containment profile the pods that run the checkpoint must meet (None: the policy
    #: asks nothing of the pod).
    containment: ContainmentRequirement | None = None

    @property
    def reasons(self) -> tuple[str, ...]:
        """One line per failing or warning check, for a person."""
        bad = (CheckStatus.FAIL, CheckStatus.WARN)
        return tuple(f"{c.id}: {c.message}" for c in self.checks if c.status in bad)

    def check(self, check_id: str) -> CheckResult | None:
        return next((c for c in self.checks if c.id == check_id), None)


class _Eval:
    def __init__(self, policy: ModelPolicy, facts: Facts, now: datetime) -> None:
        self.policy = policy
        self.facts = facts
        self.now = now
        self.checks: list[CheckResult] = []
        self.expiries: list[datetime] = []
        self._cel: dict[str, Any] | None = None

    @property
    def cel(self) -> dict[str, Any]:
        """The CEL input, built once for the rules and the containment selectors."""
        if self._cel is None:
            self._cel = cel_variables(self.facts, self.now)
        return self._cel

    def add(self, check_id: str, ok: bool, message: str, **evidence: Any) -> bool:
        status = CheckStatus.PASS if ok else CheckStatus.FAIL
        self.checks.append(CheckResult(check_id, status, message, MappingProxyType(evidence)))
        return ok

    # ---- identity ------------------------------------------------------------------------
    def identity(self) -> None:
        f = self.facts
        self.add(
            "quarantine",
            not f.quarantined,
            "the checkpoint is quarantined" if f.quarantined else "not quarantined",
            quarantined=f.quarantined,
        )
        try:
            Digest.parse(f.digest)
        except InvalidInputError as exc:
            self.add("digest", False, f"not a checkpoint digest: {exc.message}", digest=f.digest)
        else:
            self.add("digest", True, "checkpoint digest well-formed", digest=f.digest)
        self.malicious()

    @property
    def ref(self) -> str:
        """The checkpoint as a CLI reference, for the `run: modelctl …` hints."""
        return f"{self.facts.name}@{self.facts.digest}"

    def malicious(self) -> None:
        """Denied while the newest scan of any scanner says `malicious`, unless every finding
        that makes it so has an active "false positive" triage."""
        bad = [s for s in newest_scans(self.facts.scans) if s.verdict == "malicious"]
        if not bad:
            self.add("malicious", True, "no scanner's newest scan is malicious")
            return
        untriaged: dict[str, str] = {}
        triaged: list[str] = []
        unexplained: list[str] = []
        for scan in bad:
            found = blocking_findings(scan)
            if not found:
                unexplained.append(scan.scanner)
            for file, finding in found:
                until = self.facts.triaged.get(finding.id)
                if until is not None and until > self.now:
                    triaged.append(finding.id)
                    self.expiries.append(until)  # the decision lasts no longer than its triage
                elif finding.id not in untriaged:
                    untriaged[finding.id] = (
                        f"{scan.scanner}: {file.path}: {finding.id} {finding.rule} "
                        f"({finding.severity}) {finding.message[:120]}"
                    )
        scanners = sorted({s.scanner for s in bad})
        evidence: dict[str, Any] = {
            "scanners": scanners,
            "untriaged": sorted(untriaged),
            "triaged": sorted(set(triaged)),
        }
        if not untriaged and not unexplained:
            self.add(
                "malicious",
                True,
                f"malicious verdict from {', '.join(scanners)}: every finding is triaged as a "
                f"false positive ({', '.join(sorted(set(triaged)))})",
                **evidence,
            )
            return
        self.add("malicious", False, _malicious_message(untriaged, unexplained), **evidence)

    # ---- declarative checks -----------------------------------------------------------------
    def sources(self) -> None:
        s = self.policy.sources
        if s is None:
            return
        uri = self.facts.source_uri
        denied = next((g.pattern for g in s.deny if g.matches(uri)), None)
        if denied is not None:
            self.add("sources", False, f"source {uri} is denied by {denied}", uri=uri, deny=denied)
            return
        if s.allow:
            allowed = next((g.pattern for g in s.allow if g.matches(uri)), None)
            if allowed is None:
                patterns = ", ".join(g.pattern for g in s.allow)
                self.add(
                    "sources",
                    False,
                    f"source {uri} matches no allowed pattern ({patterns})",
                    uri=uri,
                )
                return
            self.add("sources", True, f"source {uri} allowed by {allowed}", uri=uri, allow=allowed)
            return
        self.add("sources", True, f"source {uri} is not denied", uri=uri)

    def revisions(self) -> None:
        r = self.policy.revisions
        if r is None:
            return
        commit = self.facts.commit
        if r.require_pinned:
            # A folder has no commit: its content digest is its revision (and pins it).
            by_digest = commit == self.facts.digest
            ok = by_digest or _PINNED.match(commit) is not None
            if by_digest:
                msg = f"pinned by its content digest {commit}"
            elif ok:
                msg = f"pinned to commit {commit}"
            else:
                msg = f"revision {commit!r} is not a full commit id nor the checkpoint's digest"
            self.add("revisions.pinned", ok, msg, commit=commit)
        uri = self.facts.source_uri
        for pin in r.pins:
            if pin.source.matches(uri):
                ok = commit in pin.commits
                msg = (
                    f"commit {commit} is pinned for {pin.source.pattern}"
                    if ok
                    else f"commit {commit} is not one of the pinned commits for "
                    f"{pin.source.pattern}"
                )
                self.add("revisions.pins", ok, msg, commit=commit, pins=list(pin.commits))
                return

    def licenses(self) -> None:
        lic = self.policy.licenses
        if lic is None:
            return
        raw = (self.facts.license or "").strip().lower()
        if raw in _UNKNOWN_LICENSES:
            self.add(
                "licenses",
                lic.allow_unknown,
                "license unknown, allowed by allowUnknown"
                if lic.allow_unknown
                else "license unknown (declare it, or set licenses.allowUnknown)",
                license=self.facts.license,
            )
            return
        ok = raw in lic.allow
        self.add(
            "licenses",
            ok,
            f"license {raw} is allowed" if ok else f"license {raw} is not in the allowed list",
            license=raw,
        )

    def formats(self, scans_clean: bool) -> None:
        fmt = self.policy.formats
        if fmt is None:
            return
        pickled = [f.path for f in self.facts.files if f.format in PICKLE_BASED_FORMATS]
        if not pickled:
            self.add("formats.pickle-based", True, "no pickle-based files")
        elif fmt.pickle_based is PickleBased.ALLOW:
            self.add("formats.pickle-based", True, "pickle-based files allowed", files=pickled)
        elif fmt.pickle_based is PickleBased.ALLOW_IF_SCANS_CLEAN:
            self.add(
                "formats.pickle-based",
                scans_clean,
                "pickle-based files allowed: the pickle scan is clean"
                if scans_clean
                else "pickle-based files are allowed only with a clean, fresh pickle scan",
                files=pickled,
            )
        else:
            shown = ", ".join(pickled[:5]) + (" …" if len(pickled) > 5 else "")
            self.add(
                "formats.pickle-based",
                False,
                f"pickle-based weights are denied: {shown}",
                files=pickled,
            )
        if fmt.allow is not None:
            other = sorted({f.format for f in self.facts.files} - fmt.allow)
            self.add(
                "formats.allowed",
                not other,
                "every file format is allowed"
                if not other
                else f"formats not allowed: {', '.join(other)}",
                formats=other,
            )

    # ---- attestations ------------------------------------------------------------------------
    def attestation(self, req: RequiredAttestation) -> None:
        f = self.facts
        same_type = [a for a in f.attestations if a.predicate_type == req.predicate_type]
        satisfied: list[str] = []
        notes: list[str] = []
        counted: set[int] = set()
        for name in req.signers:
            signer = self.policy.signer(name)
            if signer is None:  # the loader refuses this; fail closed anyway
                notes.append(f"signer {name} is not declared")
                continue
            matching = [a for a in same_type if _signed_by(signer, a)]
            counted.update(id(a) for a in matching)
            if not matching:
                notes += _ca_leaf_notes(signer, same_type)
                continue
            if signer.not_after is not None and self.now >= signer.not_after:
                notes.append(f"signer {name}'s key expired at {signer.not_after.isoformat()}")
                continue
            good = [a for a in matching if a.subject_digest == f.digest]
            if not good:
                notes.append(f"{name}'s attestation is over another subject, not {f.digest}")
                continue
            if all(a.verified_at > self.now for a in good):
                notes.append(f"{name}'s attestation was verified in the future")
                continue
            satisfied.append(name)
            if signer.not_after is not None:
                self.expiries.append(signer.not_after)
        untrusted = sorted({a.signer for a in same_type if id(a) not in counted})
        if untrusted:
            notes.append(f"ignored attestations by untrusted signers: {', '.join(untrusted)}")
        ok = len(satisfied) >= req.threshold
        need = (
            f"{req.threshold} of [{', '.join(req.signers)}]"
            if len(req.signers) > 1
            else req.signers[0]
        )
        if ok:
            msg = f"{req.predicate_type} verified from {', '.join(satisfied)}"
        elif not same_type:
            msg = f"missing {req.predicate_type} attestation (signed by {need})"
        else:
            msg = f"{req.predicate_type} needs a valid attestation from {need}; found " + (
                f"{len(satisfied)}" if satisfied else "none"
            )
        if notes:
            msg += " (" + "; ".join(notes) + ")"
        self.add(
            req.check_id,
            ok,
            msg if ok else msg + self.attest_hint(req),
            predicateType=req.predicate_type,
            signers=satisfied,
            required=list(req.signers),
            threshold=req.threshold,
        )

    def attest_hint(self, req: RequiredAttestation) -> str:
        """What fixes a missing registry attestation: `modelctl attest` issues both kinds."""
        if REGISTRY_SIGNER in req.signers and req.predicate_type in _REGISTRY_ATTESTED:
            return f"; run: modelctl attest {self.ref}"
        return ""

    # ---- scans ------------------------------------------------------------------------------
    def scan(self, req: ScanRequirement) -> bool:
        runs = [s for s in self.facts.scans if s.scanner == req.scanner]
        hint = f"run: modelctl scan {self.ref} --scanner {req.scanner}"
        if not runs:
            return self.add(
                req.check_id,
                False,
                f"no {req.scanner} scan on record; {hint}",
                scanner=req.scanner,
            )
        run = max(runs, key=lambda s: s.finished_at)
        ev: dict[str, Any] = {
            "scanner": run.scanner,
            "version": run.version,
            "verdict": run.verdict,
            "finishedAt": run.finished_at.isoformat(),
        }
        if req.differential:
            ev["baseModel"] = self.facts.base_model
            ev["differentialBase"] = run.differential_base
        problems = _scan_problems(req, run, self.now)
        if req.differential and self.facts.base_model and run.differential_base is None:
            problems.append(
                f"not differential: {self.facts.name} is a fine-tune of "
                f"{self.facts.base_model} (model card); run: modelctl scan {self.ref} "
                f"--scanner {req.scanner} --base {self.facts.base_model}"
            )
        if problems:
            stale = any(p.startswith(("stale", "version")) for p in problems)
            message = f"{req.scanner} scan: {'; '.join(problems)}" + (f"; {hint}" if stale else "")
            return self.add(req.check_id, False, message, **ev)
        if req.max_age is not None:
            self.expiries.append(run.finished_at + req.max_age)
        return self.add(
            req.check_id, True, f"{req.scanner} {run.version} scan is {run.verdict}", **ev
        )

    def verdicts(self) -> None:
        """`spec.verdicts.deny`: over the newest scan of every scanner, named or not."""
        rule = self.policy.verdicts
        if rule is None:
            return
        newest = newest_scans(self.facts.scans)
        for verdict in rule.deny:
            hits: list[str] = []
            for scan in newest:
                files = [f.path for f in scan.files if f.verdict == verdict]
                if files:
                    shown = ", ".join(files[:5]) + (" …" if len(files) > 5 else "")
                    hits.append(f"{scan.scanner} ({shown})")
                elif scan.verdict == verdict:
                    hits.append(scan.scanner)
            self.add(
                f"verdicts.{verdict}",
                not hits,
                f"{verdict} from {'; '.join(hits)}"
                if hits
                else f"no scanner's newest scan gives the verdict {verdict}",
                verdict=verdict,
                scanners=[h.split(" ", 1)[0] for h in hits],
            )

    # ---- rules --------------------------------------------------------------------------------
    def rules(self) -> None:
        if not self.policy.rules:
            return
        act = cel_engine.activation(self.cel)
        for rule in self.policy.rules:
            outcome = cel_engine.run_rule(rule.compiled, act)
            if outcome.error is not None:
                self.add(
                    rule.check_id,
                    False,
                    outcome.error,
                    expression=rule.expression,
                    error=outcome.error,
                )
            else:
                self.add(
                    rule.check_id,
                    outcome.ok,
                    "rule holds" if outcome.ok else rule.message,
                    expression=rule.expression,
                )

    # ---- containment ---------------------------------------------------------------------
    def containment(self, mode: Mode) -> ContainmentRequirement | None:
        """The profile the pod needs: the first selector whose `when` holds, else the default.
        A selector that errors picks its own profile and fails the check (fail closed: the
        decision denies, and the pod would still need that profile)."""
        c = self.policy.containment
        if c is None:
            return None
        variables = dict(self.cel)
        variables["waived"] = [x.id for x in self.checks if x.status is CheckStatus.WAIVED]
        variables["triaged"] = sorted(k for k, v in self.facts.triaged.items() if v > self.now)
        act = cel_engine.activation(variables, selector=True)
        for selector in c.select:
            outcome = cel_engine.run_rule(selector.compiled, act)
            if outcome.error is not None:
                self._containment_check(selector.profile, mode, selector.id, outcome.error)
                return ContainmentRequirement(selector.profile, mode, f"{selector.id}: error")
            if outcome.ok:
                because = f"{selector.id}: {selector.reason}"
                self._containment_check(selector.profile, mode, because, None)
                return ContainmentRequirement(selector.profile, mode, because)
        self._containment_check(c.default, mode, "default", None)
        return ContainmentRequirement(c.default, mode, "default")

    def _containment_check(
        self, profile: ContainmentProfile, mode: Mode, because: str, error: str | None
    ) -> None:
        evidence = {
            "profile": profile.name,
            "revision": profile.revision,
            "profileDigest": profile.digest,
            "selector": because,
            "mode": mode.value,
        }
        if error is not None:
            self.add("containment", False, f"selector {because} failed: {error}", **evidence)
            return
        self.add(
            "containment",
            True,
            f"pods that run it must meet containment profile {profile.label} ({because})",
            **evidence,
        )

    # ---- exceptions ------------------------------------------------------------------------
    def waive(self, environment: str | None) -> list[str]:
        applied: list[str] = []
        for i, check in enumerate(self.checks):
            if check.status is not CheckStatus.FAIL:
                continue
            if check.id.split(".", 1)[0] in UNWAIVABLE_PREFIXES:
                continue
            exc = next(
                (
                    e
                    for e in self.policy.exceptions
                    if check.id in e.waive and self._applies(e, environment)
                ),
                None,
            )
            if exc is None:
                continue
            message = (
                f"{check.message} — waived by {exc.id} until "
                f"{exc.expires.isoformat()} ({exc.reason}; approved by {exc.approver})"
            )
            self.checks[i] = CheckResult(
                check.id,
                CheckStatus.WAIVED,
                message,
                MappingProxyType({**check.evidence, "exception": exc.id}),
            )
            self.expiries.append(exc.expires)
            if exc.id not in applied:
                applied.append(exc.id)
        return applied

    def _applies(self, exc: PolicyException, environment: str | None) -> bool:
        if self.now >= exc.expires:
            return False
        if exc.environments is not None and environment not in exc.environments:
            return False
        s, f = exc.scope, self.facts
        return (
            (s.name is None or s.name.matches(f"x://{f.name}"))
            and (s.digest is None or s.digest == f.digest)
            and (s.source is None or s.source.matches(f.source_uri))
        )


def _malicious_message(untriaged: dict[str, str], unexplained: list[str]) -> str:
    """Each untriaged finding (id, rule, file; five at most), and what gets past them."""
    parts = list(untriaged.values())[:5]
    if len(untriaged) > 5:
        parts.append(f"and {len(untriaged) - 5} more")
    parts += [f"{name} says malicious but names no finding: re-scan" for name in unexplained]
    return "; ".join(parts) + (
        " (a false positive needs a finding triage approved by a second person: "
        "modelctl finding triage FINDING_ID --false-positive)"
    )


def newest_scans(scans: tuple[ScanFact, ...]) -> list[ScanFact]:
    """The newest run of each scanner, by scanner id."""
    newest: dict[str, ScanFact] = {}
    for scan in scans:
        seen = newest.get(scan.scanner)
        if seen is None or scan.finished_at > seen.finished_at:
            newest[scan.scanner] = scan
    return [newest[k] for k in sorted(newest)]


def blocking_findings(scan: ScanFact) -> list[tuple[ScannedFileFact, FindingFact]]:
    """What makes a scan malicious: the high and critical findings of each file whose verdict
    is malicious (every finding of such a file when none is high or critical)."""
    out: list[tuple[ScannedFileFact, FindingFact]] = []
    for file in scan.files:
        if file.verdict != "malicious":
            continue
        serious = [f for f in file.findings if f.severity in BLOCKING_SEVERITIES]
        out += [(file, f) for f in serious or file.findings]
    return out


def _signed_by(signer: Signer, att: AttestationFact) -> bool:
    if isinstance(signer, RegistrySigner):
        return att.signer == signer.name
    if isinstance(signer, KeySigner):
        return att.signer == signer.name or (
            signer.key_hint is not None and att.signer == signer.key_hint
        )
    identity = att.identity if att.identity is not None else att.signer
    if isinstance(signer, KeylessSigner):
        return (
            att.signer in (signer.name, identity)
            and att.issuer == signer.issuer
            and signer.subject.fullmatch(identity) is not None
        )
    assert isinstance(signer, CertificateSigner)
    # The caller verified the chain against this signer's roots and says so by name. A CA
    # certificate used as the signing leaf counts only where the policy allows it.
    return (
        att.signer == signer.name
        and att.identity is not None
        and signer.san.fullmatch(att.identity) is not None
        and (signer.allow_ca_leaf or not att.leaf_is_ca)
    )


def _ca_leaf_notes(signer: Signer, atts: list[AttestationFact]) -> list[str]:
    """Why a CA-leaf attestation by `signer` did not count: it would have, had the policy
    allowed CA leaves (`allowCaLeaf`)."""
    if not isinstance(signer, CertificateSigner) or signer.allow_ca_leaf:
        return []
    allowing = dataclasses.replace(signer, allow_ca_leaf=True)
    if not any(a.leaf_is_ca and _signed_by(allowing, a) for a in atts):
        return []
    return [
        f"{signer.name}'s signing certificate is a CA certificate (CA:TRUE), "
        "which the policy does not allow (allowCaLeaf)"
    ]


def _version(text: str) -> tuple[int, ...] | None:
    parts = text.split("+", 1)[0].split("-", 1)[0].split(".")
    if not all(p.isdigit() for p in parts):
        return None
    return tuple(int(p) for p in parts)


def _scan_problems(req: ScanRequirement, run: ScanFact, now: datetime) -> list[str]:
    problems: list[str] = []
    if run.verdict in req.forbid or run.verdict not in VERDICTS:
        problems.append(f"verdict {run.verdict}")
    if req.min_version is not None:
        have = _version(run.version)
        if have is None or have < req.min_version:
            want = ".".join(str(p) for p in req.min_version)
            problems.append(f"version {run.version} is older than {want}")
    if req.max_age is not None and now - run.finished_at >= req.max_age:
        problems.append(f"stale: finished {run.finished_at.isoformat()}, older than {req.max_age}")
    if run.finished_at > now:
        problems.append("finished in the future")
    if req.max_severity is not None:
        sev = run.max_severity or "none"
        if sev not in SEVERITIES or SEVERITIES.index(sev) > SEVERITIES.index(req.max_severity):
            problems.append(f"severity {sev} is above {req.max_severity}")
    return problems


def _rfc3339(value: datetime) -> str:
    """Nested timestamps go to CEL as RFC 3339 strings (cel-expr-python 0.1.3 cannot convert
    a nested datetime); rules read them with `timestamp(s.finishedAt)`."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def cel_variables(facts: Facts, now: datetime) -> dict[str, Any]:
    """The CEL rules' input (documented in policies/README.md)."""
    return {
        "checkpoint": {
            "name": facts.name,
            "digest": facts.digest,
            "source": {"uri": facts.source_uri, "commit": facts.commit},
            "revisions": list(facts.revisions),
            "quarantined": facts.quarantined,
            "files": [
                {"path": f.path, "size": f.size, "sha256": f.sha256, "format": f.format}
                for f in facts.files
            ],
        },
        "attestations": [
            {
                "predicateType": a.predicate_type,
                "signer": a.signer,
                "identity": a.identity or "",
                "issuer": a.issuer or "",
                "subject": a.subject_digest,
                "verifiedAt": _rfc3339(a.verified_at),
            }
            for a in facts.attestations
        ],
        "scans": [
            {
                "scanner": s.scanner,
                "version": s.version,
                "verdict": s.verdict,
                "finishedAt": _rfc3339(s.finished_at),
                "maxSeverity": s.max_severity or "none",
            }
            for s in facts.scans
        ],
        "license": facts.license or "",
        "now": now,
    }


def evaluate(
    policy: ModelPolicy,
    facts: Facts,
    *,
    now: datetime,
    mode: Mode = Mode.ENFORCE,
    environment: str | None = None,
    containment_mode: Mode | None = None,
) -> Decision:
    """The decision for `facts` under `policy` at `now` (timezone-aware). Pure.

    `containment_mode` (the binding's `containmentMode`, default `mode`) is carried on the
    containment requirement for whoever checks the pod."""
    if now.tzinfo is None:
        raise InvalidInputError("now must be timezone-aware")
    ev = _Eval(policy, facts, now)
    ev.identity()
    ev.sources()
    ev.revisions()
    ev.licenses()
    for req in policy.attestations:
        ev.attestation(req)
    scan_ok = [ev.scan(req) for req in policy.scans]
    pickle_runs = [s for s in facts.scans if s.scanner == "pickle"]
    latest = max(pickle_runs, key=lambda s: s.finished_at, default=None)
    pickle_clean = all(scan_ok) and latest is not None and latest.verdict == "clean"
    ev.formats(pickle_clean)
    ev.verdicts()
    ev.rules()
    applied = ev.waive(environment)
    requirement = ev.containment(containment_mode or mode)
    hard = any(c.status is CheckStatus.FAIL and c.id in HARD_CHECKS for c in ev.checks)
    checks = ev.checks
    if mode is Mode.WARN:
        checks = [
            CheckResult(c.id, CheckStatus.WARN, c.message, c.evidence)
            if c.status is CheckStatus.FAIL and c.id not in HARD_CHECKS
            else c
            for c in checks
        ]
    failed = any(c.status is CheckStatus.FAIL for c in checks)
    allowed = not hard and (mode is not Mode.ENFORCE or not failed)
    return Decision(
        allowed=allowed,
        mode=mode,
        environment=environment,
        policy_name=policy.name,
        policy_digest=policy.digest,
        checkpoint_digest=facts.digest,
        checks=tuple(checks),
        evaluated_at=now,
        expires_at=min(ev.expiries, default=None),
        exceptions_applied=tuple(applied),
        containment=requirement,
    )
