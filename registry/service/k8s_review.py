"""Reviewing workloads: the logic behind `/k8s/admission` (registry/api/k8s.py translates it
to HTTP). AdmissionReview parsing (Pods, controllers and InferenceServices through
`workloads`, NetworkPolicies through `netpol_review`), the model references each pod carries,
and the review itself: the models' decisions, then the containment their decisions require
(`policies.pod_decision`). Every decision is made through `gate.Gatekeeper` (see `gate` for
what "admitted" means); only the webhook keeps a decision, in `decision_cache.DecisionCache`,
until the decision's expiry (capped), and it re-reads the quarantine state on every review.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from policies import Decision
from policies.containment import ContainmentException
from policies.errors import WorkloadShapeError
from policies.pod_decision import ContainmentVerdict, Workload, contain
from registry.db.models import Checkpoint, Model, Quarantine
from registry.errors import Denied, InputError
from registry.mirror.oci_ref import parse_oci_ref
from registry.refs import ModelName
from registry.service import admission, oci_identity, workloads
from registry.service.checkpoints import source_view
from registry.service.decision_cache import DecisionCache
from registry.service.gate import Gatekeeper, check_environment, failing_checks, warning_checks
from registry.service.netpol_review import NetworkPolicyError, egress_warnings
from registry.service.workloads import PodTemplate, WorkloadError

_HEX40 = re.compile(r"[0-9a-f]{40}")
_HEX64 = re.compile(r"[0-9a-f]{64}")

ANNOTATION = "modelctl.dev/model"
#: Every annotation under this prefix is ours: one we do not know (a typo, `modelctl.dev/Model`)
#: refuses the pod, lest a misspelt model reference let it through as model-free.
ANNOTATION_PREFIX = "modelctl.dev/"
KNOWN_ANNOTATIONS = f"{ANNOTATION}, {ANNOTATION}.<suffix> (lower-case letters, digits, '-')"
KSERVE_SOURCE_ANNOTATION = "internal.serving.kserve.io/storage-initializer-sourceuri"
STORAGE_INITIALIZER = "storage-initializer"
_ANNOTATION_KEY = re.compile(r"modelctl\.dev/model(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)?")
_HF_URI = re.compile(
    r"hf://(?P<ns>[A-Za-z0-9][A-Za-z0-9._-]{0,95})/(?P<name>[A-Za-z0-9][A-Za-z0-9._-]{0,95})"
    r"(?::(?P<hash>[^/\s]*))?(?P<rest>/.*)?"
)
#: KServe's ModelCar: the model image runs as this sidecar (and this init container), its image
#: the `storageUri` without `oci://`. Their image is a model reference, never a plain image.
MODELCAR_CONTAINERS = frozenset({"modelcar", "modelcar-init"})
OCI_SCHEME = "oci://"
#: Why an OCI tag is refused (docs/k8s-admission.md, ADR 0024): the webhook admits bytes, and a
#: tag names whatever the registry says at pull time, not what was reviewed.
OCI_TAG_REFUSED = (
    "unpinned OCI reference: write REPO@sha256:<manifest digest> (the webhook refuses tags: a "
    "tag can move after admission; `modelctl inspect` lists the pushed digests)"
)
#: Bounds on what a review may carry (the API server caps requests at 3 MiB anyway).
MAX_REFERENCES = 64
MAX_REFERENCE_CHARS = 512


class MalformedReview(InputError):
    """The body is not an AdmissionReview v1 we can answer (no uid to echo, wrong shape)."""


@dataclass(frozen=True, slots=True)
class ModelReference:
    """One model a pod uses: where it was found, what was written, and what it pins."""

    where: str
    text: str
    name: str | None = None  # NS/NAME
    digest: str | None = None  # sha256:<hex> (annotation) ...
    commit: str | None = None  # ... or a 40-hex source commit (annotation or hf://…:HASH)
    problem: str | None = None  # why it cannot be admitted as written
    source_uri: str | None = None  # hf://NS/NAME: checkpoints mirrored from it, any name
    oci_digest: str | None = None  # sha256:<hex> of an OCI manifest: checkpoints recorded under it


@dataclass(frozen=True, slots=True)
class TemplateReview:
    """One pod the object runs (`workloads.PodTemplate`) and the models it references."""

    template: PodTemplate
    references: tuple[ModelReference, ...]


@dataclass(frozen=True, slots=True)
class PodReview:
    uid: str
    kind: str
    operation: str
    namespace: str
    name: str
    references: tuple[ModelReference, ...]  # of every template, each once
    templates: tuple[TemplateReview, ...] = ()
    network_policy: Mapping[str, Any] | None = None
    dry_run: bool = False


def parse_reference(text: str, where: str) -> ModelReference:
    """`NS/NAME@sha256:<64 hex>` or `NS/NAME@<40-hex source commit>` (annotation), or
    `hf://NS/NAME:<40-hex commit>` (KServe). Anything unpinned or unparsable carries a
    `problem` and is denied."""
    text = text.strip()
    if len(text) > MAX_REFERENCE_CHARS:
        return ModelReference(where, text[:80] + "...", problem="reference too long")
    if text.startswith("hf://"):
        return _parse_hf_uri(text, where)
    if text.startswith(OCI_SCHEME):
        return parse_image_reference(text[len(OCI_SCHEME) :], where, shown=text)
    if "://" in text:
        return ModelReference(
            where, text, problem="unsupported scheme (modelctl checks hf:// and oci:// only)"
        )
    return _parse_name_reference(text, where)


def parse_image_reference(text: str, where: str, *, shown: str | None = None) -> ModelReference:
    """An OCI reference as a pod writes it (`HOST/REPO@sha256:…`, a ModelCar image, an image
    volume, or `oci://` less its scheme): admitted by its manifest digest only."""
    shown = shown or text
    text = text.strip()
    if len(text) > MAX_REFERENCE_CHARS:
        return ModelReference(where, shown[:80] + "...", problem="reference too long")
    try:
        ref = parse_oci_ref(OCI_SCHEME + text)
    except InputError:
        return ModelReference(
            where, shown, problem="not an OCI reference HOST/REPO@sha256:<manifest digest>"
        )
    if ref.digest is None:
        return ModelReference(where, shown, problem=OCI_TAG_REFUSED)
    return ModelReference(where, shown, oci_digest=ref.digest)


def _parse_name_reference(text: str, where: str) -> ModelReference:
    name, sep, selector = text.partition("@")
    try:
        ModelName.parse(name)
    except InputError:
        return ModelReference(where, text, problem="not NAMESPACE/NAME@sha256:<digest>")
    if not sep:
        return ModelReference(where, text, name=name, problem="unpinned: add @sha256:<digest>")
    if selector.startswith("sha256:") and _HEX64.fullmatch(selector[7:]):
        return ModelReference(where, text, name=name, digest=selector)
    if _HEX40.fullmatch(selector):
        return ModelReference(where, text, name=name, commit=selector)
    return ModelReference(
        where, text, name=name, problem="pin by @sha256:<manifest digest> or a 40-hex commit"
    )


def _parse_hf_uri(text: str, where: str) -> ModelReference:
    m = _HF_URI.fullmatch(text)
    if m is None or m.group("rest") or ".." in text:
        return ModelReference(where, text, problem="not an hf://NAMESPACE/NAME[:COMMIT] URI")
    name = f"{m.group('ns')}/{m.group('name')}"
    commit = m.group("hash")
    if not commit:
        return ModelReference(
            where, text, name=name, problem=f"unpinned: write hf://{name}:<40-hex commit>"
        )
    if not _HEX40.fullmatch(commit):
        return ModelReference(where, text, name=name, problem="the :HASH is not a 40-hex commit")
    return ModelReference(where, text, name=name, commit=commit, source_uri=f"hf://{name}")


def _mapping(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise MalformedReview(f"{what} is not an object")
    return value


def _strings(value: object, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise MalformedReview(f"{what} is not a list of strings")
    return list(value)


def review_uid(document: object) -> str | None:
    """The request's uid if the body has one we can echo (even when the rest is malformed)."""
    if isinstance(document, dict):
        request = document.get("request")
        if isinstance(request, dict):
            uid = request.get("uid")
            if isinstance(uid, str) and 0 < len(uid) <= 128:
                return uid
    return None


def parse_admission_review(document: object) -> PodReview:
    """An `admission.k8s.io/v1` AdmissionReview for a Pod, a controller (Deployment,
    StatefulSet, DaemonSet, ReplicaSet, Job, CronJob), a KServe InferenceService or a
    NetworkPolicy, and the models each pod it runs references.

    Recognised in each pod (template), in this order (each occurrence is one reference;
    duplicates are kept once):
    1. annotation `modelctl.dev/model`: one or several references separated by commas or
       whitespace; and annotations `modelctl.dev/model.<suffix>` (one reference each);
    2. annotation `internal.serving.kserve.io/storage-initializer-sourceuri` (what KServe
       puts on the predictor pod) when it is an `hf://` URI;
    3. every argument or command word starting with `hf://` of any init, regular or
       ephemeral container (KServe passes the storage URI to its `storage-initializer`; a
       model fetched by another container is a model too);
    4. an InferenceService component's `storageUri`/`storageUris` when they are `hf://`;
    5. OCI references, admitted by manifest digest (`oci_identity.checkpoints_for_oci_digest`),
       tags refused: `oci://` in 2 to 4, the image of a ModelCar container (`modelcar`,
       `modelcar-init`) and every image volume's `volumes[].image.reference`.
    A controller's own `modelctl.dev/` annotations are refused: pods get the template's.
    """
    doc = _mapping(document, "the body")
    if doc.get("apiVersion") != "admission.k8s.io/v1" or doc.get("kind") != "AdmissionReview":
        raise MalformedReview("expected apiVersion admission.k8s.io/v1, kind AdmissionReview")
    request = _mapping(doc.get("request"), "request")
    uid = review_uid(doc)
    if uid is None:
        raise MalformedReview("request.uid is missing")
    kind_obj = _mapping(request.get("kind") or {}, "request.kind")
    kind = kind_obj.get("kind")
    operation = request.get("operation")
    if not isinstance(kind, str) or not isinstance(operation, str):
        raise MalformedReview("request.kind.kind and request.operation are required")
    namespace = request.get("namespace") or ""
    name = request.get("name") or ""
    if not isinstance(namespace, str) or not isinstance(name, str):
        raise MalformedReview("request.namespace and request.name must be strings")
    dry_run = request.get("dryRun") is True
    if operation not in ("CREATE", "UPDATE"):
        return PodReview(uid, kind, operation, namespace, name, (), dry_run=dry_run)
    obj = _mapping(request.get("object"), "request.object")
    metadata = _mapping(obj.get("metadata") or {}, "request.object.metadata")
    name = name or str(metadata.get("name") or metadata.get("generateName") or "")
    if operation == "UPDATE" and metadata.get("deletionTimestamp"):
        # Being deleted: finalizers must be able to finish (nothing new will run).
        return PodReview(uid, kind, operation, namespace, name, (), dry_run=dry_run)
    if kind == "NetworkPolicy":
        return PodReview(uid, kind, operation, namespace, name, (), (), obj, dry_run)
    if kind not in workloads.KINDS:
        return PodReview(uid, kind, operation, namespace, name, (), dry_run=dry_run)
    try:
        templates = tuple(
            TemplateReview(t, tuple(_template_references(kind, t, metadata)))
            for t in workloads.pod_templates(kind, obj)
        )
    except WorkloadError as exc:
        raise MalformedReview(exc.message) from exc
    seen: set[tuple[str, str]] = set()
    unique = []
    for ref in (r for t in templates for r in t.references):
        if (ref.where, ref.text) not in seen:
            seen.add((ref.where, ref.text))
            unique.append(ref)
    if len(unique) > MAX_REFERENCES:
        raise MalformedReview(f"more than {MAX_REFERENCES} model references")
    return PodReview(uid, kind, operation, namespace, name, tuple(unique), templates, None, dry_run)


def _template_references(
    kind: str, template: PodTemplate, owner: Mapping[str, Any]
) -> list[ModelReference]:
    pod = template.pod
    metadata = _mapping(pod.get("metadata") or {}, f"{template.where or 'request.object'}.metadata")
    prefix = f"{template.where} " if template.where else ""
    refs = [replace(r, where=prefix + r.where) for r in _pod_references(pod, metadata)]
    refs += [
        parse_reference(uri, where)
        for where, uri in template.storage_uris
        if uri.strip().startswith(("hf://", OCI_SCHEME))
    ]
    if kind in workloads.TEMPLATE_PATHS:  # the controller's own annotations stay on it
        annotations = _mapping(owner.get("annotations") or {}, "metadata.annotations")
        refs += [
            ModelReference(
                f"{kind} annotation {key[:100]}",
                str(value)[:80],
                problem=f"pods do not get the {kind}'s annotations: put it on "
                f"{template.where}.metadata.annotations",
            )
            for key, value in annotations.items()
            if key.lower().startswith(ANNOTATION_PREFIX)
        ]
    return refs


def _pod_references(pod: Mapping[str, Any], metadata: Mapping[str, Any]) -> list[ModelReference]:
    annotations = _mapping(metadata.get("annotations") or {}, "metadata.annotations")
    refs = _annotation_references(annotations)
    spec = _mapping(pod.get("spec") or {}, "spec")
    for field_name in ("initContainers", "containers", "ephemeralContainers"):
        containers = spec.get(field_name) or []
        if not isinstance(containers, list):
            raise MalformedReview(f"spec.{field_name} is not a list")
        for i, container in enumerate(containers):
            c = _mapping(container, f"spec.{field_name}[{i}]")
            label = c.get("name") if isinstance(c.get("name"), str) else f"#{i}"
            if label in MODELCAR_CONTAINERS:
                image = c.get("image")
                where = f"{field_name}[{label}].image (ModelCar)"
                refs.append(
                    parse_image_reference(image, where)
                    if isinstance(image, str)
                    else ModelReference(where, "", problem="the ModelCar container has no image")
                )
            for part in ("args", "command"):
                words = _strings(c.get(part), f"spec.{field_name}[{i}].{part}")
                for j, arg in enumerate(words):
                    if arg.strip().startswith(("hf://", OCI_SCHEME)):
                        where = f"{field_name}[{str(label)[:63]}].{part}[{j}]"
                        refs.append(parse_reference(arg, where))
    return refs + _image_volume_references(spec)


def _image_volume_references(spec: Mapping[str, Any]) -> list[ModelReference]:
    """Kubernetes image volumes (`volumes[].image.reference`): an OCI artifact mounted as files,
    which is how a pod reads a model image without a ModelCar."""
    volumes = spec.get("volumes") or []
    if not isinstance(volumes, list):
        raise MalformedReview("spec.volumes is not a list")
    refs: list[ModelReference] = []
    for i, volume in enumerate(volumes):
        v = _mapping(volume, f"spec.volumes[{i}]")
        if v.get("image") is None:
            continue
        image = _mapping(v["image"], f"spec.volumes[{i}].image")
        label = v.get("name") if isinstance(v.get("name"), str) else f"#{i}"
        where = f"volumes[{str(label)[:63]}].image.reference"
        reference = image.get("reference")
        if not isinstance(reference, str):
            refs.append(ModelReference(where, "", problem="an image volume with no reference"))
            continue
        refs.append(parse_image_reference(reference, where))
    return refs


def _annotation_references(annotations: Mapping[str, Any]) -> list[ModelReference]:
    refs: list[ModelReference] = []
    for key in sorted(annotations):
        value = annotations[key]
        if not isinstance(value, str):
            raise MalformedReview(f"annotation {key!r:.80} is not a string")
        where = f"annotation {key[:100]}"
        if key == ANNOTATION:
            items = [t for t in re.split(r"[\s,]+", value) if t]
            if not items:
                refs.append(ModelReference(where, value, problem="empty"))
            refs += [parse_reference(t, where) for t in items]
        elif _ANNOTATION_KEY.fullmatch(key):
            refs.append(parse_reference(value, where))
        elif key.lower().startswith(ANNOTATION_PREFIX):
            refs.append(
                ModelReference(
                    where,
                    value[:80],
                    problem=f"unknown modelctl annotation; the known keys are {KNOWN_ANNOTATIONS}",
                )
            )
        elif key == KSERVE_SOURCE_ANNOTATION and value.strip().startswith(("hf://", OCI_SCHEME)):
            refs.append(parse_reference(value, where))
    return refs


@dataclass(frozen=True, slots=True)
class ReferenceVerdict:
    reference: ModelReference
    allowed: bool
    message: str  # one line: why (failing checks) or what was admitted
    warnings: tuple[str, ...] = ()
    #: The decisions made (one per checkpoint the reference names), for their containment
    #: requirements and for the record.
    decisions: tuple[Decision, ...] = ()


@dataclass(frozen=True, slots=True)
class PodVerdict:
    allowed: bool
    message: str
    verdicts: tuple[ReferenceVerdict, ...]
    warnings: tuple[str, ...]
    #: Per pod (template) that runs a model: the containment checks, after exceptions and mode.
    containment: tuple[tuple[str, ContainmentVerdict], ...] = ()


def _lookup(session: Session, ref: ModelReference) -> list[Checkpoint]:
    """The checkpoints a reference names: by registry name and digest or source commit, or,
    for `hf://NS/NAME:COMMIT`, every checkpoint mirrored from that repository at that commit
    whatever its registry name (that is what the pod will fetch)."""
    query = (  # quarantine by digest: of the manifest (any name) or of one of its files
        select(Checkpoint)
        .options(selectinload(Checkpoint.quarantines), selectinload(Checkpoint.file_quarantines))
        .order_by(Checkpoint.id)
    )
    if ref.oci_digest is not None:
        return oci_identity.checkpoints_for_oci_digest(session, ref.oci_digest)
    if ref.source_uri is not None:
        query = query.where(
            Checkpoint.source_uri == ref.source_uri, Checkpoint.source_commit == ref.commit
        )
        return list(session.scalars(query))
    assert ref.name is not None
    parsed = ModelName.parse(ref.name)
    query = query.join(Model, Checkpoint.model_id == Model.id).where(
        Model.namespace == parsed.namespace, Model.name == parsed.name
    )
    if ref.digest is not None:
        query = query.where(Checkpoint.manifest_digest == ref.digest.removeprefix("sha256:"))
    else:
        query = query.where(Checkpoint.source_commit == ref.commit)
    return list(session.scalars(query))


def _whole_commit_refusal(ref: ModelReference, checkpoints: Sequence[Checkpoint]) -> str | None:
    """Why `hf://NS/NAME:<commit>` cannot be admitted on these (admitted) checkpoints, or None.

    The pod fetches every file of the commit from the hub: that is covered only by a
    checkpoint known to hold the commit's complete file list. One mirrored with `--include`
    or `--exclude` (or recorded before filters were kept) leaves files nobody scanned."""
    if any(c.complete for c in checkpoints):
        return None
    cuts = "; ".join(
        f"sha256:{c.manifest_digest[:12]}… {source_view(c).filter_text}" for c in checkpoints[:3]
    )
    return (
        f"{cuts}; the pod would fetch files nobody scanned: mirror {ref.source_uri}@{ref.commit} "
        "without --include/--exclude and attest it"
    )


#: What the webhook reviews, for the message when its rules send anything else.
REVIEWED = (
    "Pods, their controllers (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob), "
    "KServe InferenceServices and NetworkPolicies"
)


def review_pod(
    session: Session,
    gate: Gatekeeper,
    cache: DecisionCache,
    review: PodReview,
    environment: str,
    *,
    now: datetime | None = None,
) -> PodVerdict:
    """Allowed iff every referenced model is admitted to `environment` now, and every pod that
    runs one meets the containment profile the models' decisions require (in the binding's
    `containmentMode`: enforce denies, warn warns, audit records).

    A source commit shared by several checkpoints (e.g. mirrored with different `--include`)
    must be admitted for every one of them: the pod fetches the commit, not one of our subsets.
    A pod that references no model is allowed (scope the webhook with selectors). A
    NetworkPolicy is allowed, with a warning for each rule that opens egress to labelled pods.
    """
    now = now or datetime.now(UTC)
    check_environment(environment)
    if review.operation not in ("CREATE", "UPDATE"):
        return PodVerdict(True, f"nothing to check on {review.operation}", (), ())
    if review.kind == "NetworkPolicy":
        return _review_network_policy(review)
    if review.kind not in workloads.KINDS:
        return PodVerdict(
            False,
            f"modelctl reviews {REVIEWED} only, not {review.kind!r:.60}: fix the webhook's rules",
            (),
            (),
        )
    memo: dict[tuple[str, str], ReferenceVerdict] = {}
    for ref in review.references:
        memo[(ref.where, ref.text)] = _review_reference(
            session, gate, cache, ref, environment=environment, now=now
        )
    verdicts = tuple(memo.values())
    denied = [v for v in verdicts if not v.allowed]
    warnings = [w for v in verdicts for w in v.warnings]
    problems: list[str] = []
    if denied:
        problems.append(
            f"{len(denied)} of {len(verdicts)} model reference(s) not admitted to "
            + f"{environment!r}: "
            + " | ".join(f"{v.reference.text} ({v.reference.where}): {v.message}" for v in denied)
        )
    contained: list[tuple[str, ContainmentVerdict]] = []
    for t in review.templates:
        decided = [memo[(r.where, r.text)] for r in t.references]
        requirements = [
            d.containment for v in decided for d in v.decisions if d.containment is not None
        ]
        if not requirements:
            continue
        where = t.template.where or "pod"
        try:
            verdict = contain(
                t.template.pod,
                requirements,
                workload=Workload(review.namespace, review.kind, review.name, environment),
                exceptions=_containment_exceptions(gate, environment),
                now=now,
            )
        except WorkloadShapeError as exc:
            problems.append(f"{where}: malformed pod: {exc.message}")
            continue
        contained.append((where, verdict))
        if verdict.failures:
            problems.append(f"containment ({where}): " + "; ".join(verdict.failures))
        warnings += [f"containment ({where}): {w}" for w in verdict.warnings]
    if problems:
        return PodVerdict(False, " | ".join(problems), verdicts, tuple(warnings), tuple(contained))
    if not verdicts:
        return PodVerdict(True, "no model references", verdicts, tuple(warnings))
    return PodVerdict(
        True,
        f"{len(verdicts)} model reference(s) admitted to {environment!r}"
        + (", containment met" if contained else ""),
        verdicts,
        tuple(warnings),
        tuple(contained),
    )


def _containment_exceptions(gate: Gatekeeper, environment: str) -> tuple[ContainmentException, ...]:
    bound = gate.policies.for_environment(environment)
    if bound is None or bound[0].containment is None:
        return ()
    return bound[0].containment.exceptions


def _review_network_policy(review: PodReview) -> PodVerdict:
    assert review.network_policy is not None
    try:
        warnings = egress_warnings(review.network_policy)
    except NetworkPolicyError as exc:
        return PodVerdict(False, f"malformed NetworkPolicy: {exc.message}", (), ())
    message = (
        f"{len(warnings)} egress rule(s) open egress to labelled model pods"
        if warnings
        else "opens no egress to labelled model pods"
    )
    return PodVerdict(True, message, (), tuple(warnings))


def _review_reference(
    session: Session,
    gate: Gatekeeper,
    cache: DecisionCache,
    ref: ModelReference,
    *,
    environment: str,
    now: datetime,
) -> ReferenceVerdict:
    if ref.problem is not None:
        return ReferenceVerdict(ref, False, ref.problem)
    try:
        return _decide_reference(session, gate, cache, ref, environment=environment, now=now)
    except Denied as exc:  # no policy bound to the environment: fail closed
        return ReferenceVerdict(ref, False, exc.message)


def _decide_reference(
    session: Session,
    gate: Gatekeeper,
    cache: DecisionCache,
    ref: ModelReference,
    *,
    environment: str,
    now: datetime,
) -> ReferenceVerdict:
    checkpoints = _lookup(session, ref)
    refusal = _oci_refusal(session, ref.oci_digest, checkpoints) if ref.oci_digest else None
    if refusal is not None:
        return ReferenceVerdict(ref, False, refusal)
    if not checkpoints:
        return ReferenceVerdict(ref, False, "no such checkpoint in the registry")
    warnings: list[str] = []
    decisions: list[Decision] = []
    for checkpoint in checkpoints:
        digest = f"sha256:{checkpoint.manifest_digest}"
        held = admission.active_quarantine(checkpoint)
        if held is not None:  # read now, on every review: never from the cache
            by = f" by file sha256:{held.digest}" if held.kind == "file" else ""
            return ReferenceVerdict(ref, False, f"{digest} is quarantined{by}: {held.reason}")
        decision = cache.get(environment, digest, now)
        if decision is None:
            decision = gate.decide(session, checkpoint, environment, now)
            cache.put(environment, digest, decision, now)
        decisions.append(decision)
        if not decision.allowed:
            reasons = failing_checks(decision) or ["policy: denied"]
            return ReferenceVerdict(
                ref, False, f"{digest}: " + "; ".join(reasons), decisions=tuple(decisions)
            )
        warnings += [f"{ref.text}: {w}" for w in warning_checks(decision)]
    if ref.source_uri is not None:
        incomplete = _whole_commit_refusal(ref, checkpoints)
        if incomplete is not None:
            return ReferenceVerdict(ref, False, incomplete, decisions=tuple(decisions))
    admitted = ", ".join(f"sha256:{c.manifest_digest[:12]}…" for c in checkpoints)
    return ReferenceVerdict(
        ref, True, f"admitted ({admitted})", tuple(warnings), decisions=tuple(decisions)
    )


def _oci_refusal(session: Session, digest: str, checkpoints: Sequence[Checkpoint]) -> str | None:
    """Why an OCI manifest digest is refused before any decision, or None: an active quarantine
    of that digest itself (`modelctl quarantine sha256:<oci digest>`: bytes blocked by any of
    their digests stay blocked), or no checkpoint recorded under it."""
    row = session.scalars(
        select(Quarantine)
        .where(
            Quarantine.digest == digest.removeprefix("sha256:"), Quarantine.released_at.is_(None)
        )
        .limit(1)
    ).first()
    if row is not None:
        return f"{digest} is quarantined: {row.reason}"
    if not checkpoints:
        return (
            f"unknown OCI manifest {digest}: no checkpoint in the registry was pushed as or "
            "mirrored from it (push it with `modelctl push`, or mirror it)"
        )
    return None
