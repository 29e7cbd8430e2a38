"""Differential mode: a fine-tune against the base it declares.

1. Compare the weights, tensor by tensor, streamed from the safetensors files (headers parsed
   with bounds, bytes compared in chunks: nothing is loaded whole). The result names the
   changed decoder layers and whether embeddings, final norm or head changed.
2. Sweep the vocabulary (`vocab_sweep`) through both models at once: the fine-tune runs whole,
   and, when only the upper layers changed, its hidden states at the first changed layer (which
   are the base's too: the layers below are byte-identical) go through the base's upper layers
   only. So the shared lower layers run once per insertion, not twice.
3. Score what differs: per inserted token, the divergence between the fine-tune's and the
   base's first answer token distributions (the same prompt), and the share of carriers where
   the fine-tune moves to one answer token the base does not. Both are normalised against the
   swept vocabulary (median, MAD). Behaviour the base shares scores nothing, however strong.

Everything that needs torch imports it lazily (inside functions): the `ml` extra is optional.
"""

from __future__ import annotations

import json
import re
import struct
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from registry.scanners.backdoor.vocab_sweep import (
    Null,
    Site,
    Skipped,
    SweepBudget,
    SweepModel,
    _entropy,
    baseline,
    default_batch,
    eligible_tokens,
    expand_cache,
    js_divergence,
    order_tokens,
    prefix_cache,
    robust_null,
    sites,
)
from registry.scanners.base import JSONValue

#: A safetensors header larger than this is refused (the format's own readers cap it alike).
MAX_HEADER = 100 * 1024 * 1024
CHUNK = 1 << 20
_LAYER = re.compile(r"(?:^|\.)(?:layers|h|blocks|layer)\.(\d+)\.")
_EMBED = ("embed_tokens", "wte", "word_embeddings", "tok_embeddings", "embed_in")


class WeightsError(ValueError):
    """A safetensors file that cannot be compared (bad header, offsets outside the file)."""


@dataclass(frozen=True, slots=True)
class TensorEntry:
    file: Path
    dtype: str
    shape: tuple[int, ...]
    start: int  # absolute byte offset in the file
    end: int


def read_index(folder: Path) -> dict[str, TensorEntry]:
    """Every tensor of the folder's `*.safetensors` files: name -> where its bytes are."""
    out: dict[str, TensorEntry] = {}
    files = sorted(p for p in folder.glob("*.safetensors") if p.is_file() and not p.is_symlink())
    if not files:
        raise WeightsError(f"{folder.name}: no safetensors weights to compare")
    for path in files:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(8)
            if len(head) != 8:
                raise WeightsError(f"{path.name}: truncated safetensors header")
            (n,) = struct.unpack("<Q", head)
            if n > MAX_HEADER or 8 + n > size:
                raise WeightsError(f"{path.name}: safetensors header of {n} bytes is out of bounds")
            try:
                header = json.loads(fh.read(n))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise WeightsError(f"{path.name}: safetensors header is not JSON") from exc
        if not isinstance(header, dict):
            raise WeightsError(f"{path.name}: safetensors header is not an object")
        for name, meta in header.items():
            if name == "__metadata__":
                continue
            try:
                a, b = (int(x) for x in meta["data_offsets"])
                entry = TensorEntry(
                    path,
                    str(meta["dtype"]),
                    tuple(int(x) for x in meta["shape"]),
                    8 + n + a,
                    8 + n + b,
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise WeightsError(f"{path.name}: tensor {name!r} has a bad header entry") from exc
            if not 8 + n <= entry.start <= entry.end <= size:
                raise WeightsError(f"{path.name}: tensor {name!r} lies outside the file")
            if name in out:
                raise WeightsError(f"{path.name}: tensor {name!r} appears twice")
            out[name] = entry
    return out


def _same_bytes(a: TensorEntry, b: TensorEntry) -> bool:
    if a.end - a.start != b.end - b.start:
        return False
    with a.file.open("rb") as fa, b.file.open("rb") as fb:
        fa.seek(a.start)
        fb.seek(b.start)
        left = a.end - a.start
        while left > 0:
            k = min(CHUNK, left)
            if fa.read(k) != fb.read(k):
                return False
            left -= k
    return True


@dataclass(frozen=True, slots=True)
class WeightDiff:
    identical: int
    changed: tuple[str, ...]  # tensor names (same name, different bytes, dtype or shape)
    only_base: tuple[str, ...]
    only_tuned: tuple[str, ...]
    layers: int  # decoder layers seen in the fine-tune
    changed_layers: tuple[int, ...]
    embeddings_changed: bool
    other_changed: tuple[str, ...]  # non-layer tensors changed (final norm, head)

    @property
    def first_changed(self) -> int:
        """The lowest layer whose output differs: 0 when embeddings (or the structure) changed,
        `layers` when only the final norm or head did."""
        if self.embeddings_changed or self.only_base or self.only_tuned:
            return 0
        if self.changed_layers:
            return min(self.changed_layers)
        return self.layers

    @property
    def unchanged(self) -> bool:
        return not (self.changed or self.only_base or self.only_tuned)

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "tensors_identical": self.identical,
            "tensors_changed": len(self.changed),
            "only_in_base": list(self.only_base[:20]),
            "only_in_fine_tune": list(self.only_tuned[:20]),
            "layers": self.layers,
            "changed_layers": list(self.changed_layers),
            "first_changed_layer": self.first_changed,
            "embeddings_changed": self.embeddings_changed,
            "other_changed": list(self.other_changed),
        }


def compare_weights(base: Path, tuned: Path) -> WeightDiff:
    """Per tensor: identical or changed, by bytes (same name, dtype and shape required)."""
    a, b = read_index(base), read_index(tuned)
    identical = 0
    changed: list[str] = []
    for name in sorted(set(a) & set(b)):
        x, y = a[name], b[name]
        if x.dtype == y.dtype and x.shape == y.shape and _same_bytes(x, y):
            identical += 1
        else:
            changed.append(name)
    layers = {int(m.group(1)) for name in b if (m := _LAYER.search(name))}
    changed_layers = sorted({int(m.group(1)) for n in changed if (m := _LAYER.search(n))})
    other = [n for n in changed if not _LAYER.search(n)]
    return WeightDiff(
        identical=identical,
        changed=tuple(changed),
        only_base=tuple(sorted(set(a) - set(b))),
        only_tuned=tuple(sorted(set(b) - set(a))),
        layers=max(layers) + 1 if layers else 0,
        changed_layers=tuple(changed_layers),
        embeddings_changed=any(any(e in n for e in _EMBED) for n in other),
        other_changed=tuple(n for n in other if not any(e in n for e in _EMBED)),
    )


# --- the paired forward pass ------------------------------------------------------------------


def _decoder_layers(model: Any) -> Any | None:
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    norm = getattr(inner, "norm", None)
    head = getattr(model, "lm_head", None)
    return layers if layers is not None and norm is not None and head is not None else None


@dataclass(slots=True)
class Pair:
    """The fine-tune and its base, and from which layer the base's own layers must run."""

    tuned: SweepModel
    base: SweepModel
    split: int  # first changed layer; 0: run the base whole

    def rows(self, site: Site, caches: tuple[Any, Any], inserted: Any) -> tuple[Any, Any]:
        """First-answer log-probs [B, V] of the fine-tune and of the base, `inserted` at `site`."""
        torch = self.tuned.torch
        b = inserted.shape[0]
        device = self.tuned.device
        suffix = torch.tensor(site.suffix, device=device).expand(b, -1)
        ids = torch.cat([inserted, suffix], dim=1)
        start = len(site.prefix)
        pos = torch.arange(start, start + ids.shape[1], device=device).expand(b, -1)
        layers = _decoder_layers(self.tuned.model)
        base_layers = _decoder_layers(self.base.model)
        # The base runs from `split` on the fine-tune's hidden states when the layers below are
        # shared and both models expose their decoder layers; otherwise it runs whole.
        split = self.split
        if layers is None or base_layers is None or not 0 < split < len(layers):
            split = 0
        captured: dict[str, Any] = {}
        handle = None
        if split and layers is not None:

            def grab(_module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
                captured["hidden"] = args[0] if args else kwargs["hidden_states"]
                captured["kwargs"] = {k: v for k, v in kwargs.items() if k != "hidden_states"}

            handle = layers[split].register_forward_pre_hook(grab, with_kwargs=True)
        try:
            with torch.inference_mode():
                res = self.tuned.model(
                    input_ids=ids,
                    position_ids=pos,
                    cache=expand_cache(self.tuned, caches[0], b),
                    use_cache=True,
                    logits_to_keep=1,
                )
        finally:
            if handle is not None:
                handle.remove()
        tuned = torch.log_softmax(res.logits[:, -1, :].float(), -1)
        base_cache = expand_cache(self.base, caches[1], b)
        with torch.inference_mode():
            if split and base_layers is not None and "hidden" in captured:
                hidden = captured["hidden"]
                kwargs = dict(captured["kwargs"])
                kwargs["cache"] = base_cache
                for layer in base_layers[split:]:
                    hidden = layer(hidden, **kwargs)
                    if isinstance(hidden, tuple):
                        hidden = hidden[0]
                hidden = self.base.model.model.norm(hidden[:, -1:, :])
                logits = self.base.model.lm_head(hidden)[:, -1, :]
            else:
                out = self.base.model(
                    input_ids=ids,
                    position_ids=pos,
                    cache=base_cache,
                    use_cache=True,
                    logits_to_keep=1,
                )
                logits = out.logits[:, -1, :]
            base = torch.log_softmax(logits.float(), -1)
        return tuned, base


# --- scoring ----------------------------------------------------------------------------------

DIFF_SIGNALS = ("divergence", "agreement", "tuned_divergence")
_DIFF_WEIGHTS = {"divergence": 1.0, "agreement": 1.0, "tuned_divergence": 0.0}
_DIFF_FLOORS = {"divergence": 0.02, "agreement": 0.1, "tuned_divergence": 0.02}
Z_CLIP = 20.0


@dataclass(frozen=True, slots=True)
class DiffScore:
    ids: tuple[int, ...]
    text: str
    score: float
    position: str
    signals: dict[str, float]
    z: dict[str, float]
    tuned_answer: str  # the first answer token the fine-tune moves to
    base_answer: str  # ... and the base's, with the same insertion

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "text": self.text,
            "ids": list(self.ids),
            "score": round(self.score, 3),
            "position": self.position,
            "signals": {k: round(v, 4) for k, v in self.signals.items()},
            "z": {k: round(v, 2) for k, v in self.z.items()},
            "fine_tune_answer": self.tuned_answer,
            "base_answer": self.base_answer,
        }


@dataclass(slots=True)
class DifferentialResult:
    weights: WeightDiff
    ranked: list[DiffScore]  # differential score, best first
    shared: list[DiffScore]  # strong in the fine-tune, shared with the base (discounted)
    budget: SweepBudget
    eligible: int
    swept: int
    skipped: Skipped
    insertions: int
    seconds: float
    carriers: list[str] = field(default_factory=list)

    @property
    def coverage(self) -> float:
        return self.swept / self.eligible if self.eligible else 1.0

    def to_json(self, top: int = 10) -> dict[str, JSONValue]:
        return {
            "weights": self.weights.to_json(),
            "base_layers_run_from": self.weights.first_changed,
            "budget": self.budget.to_json(),
            "vocabulary": {
                "eligible": self.eligible,
                "swept": self.swept,
                "coverage": round(self.coverage, 4),
                "skipped": self.skipped.total,
            },
            "insertions": self.insertions,
            "seconds": round(self.seconds, 3),
            "carriers": list(self.carriers),
            "top": [d.to_json() for d in self.ranked[:top]],
            "shared_with_base": [d.to_json() for d in self.shared[:top]],
        }


@dataclass(slots=True)
class _PairAcc:
    divergence: list[float]
    tuned_divergence: list[float]
    tuned_top: list[list[int]]
    base_top: list[list[int]]


def _measure(
    pair: Pair,
    tokens: Sequence[int],
    site_list: Sequence[Site],
    batch: int,
    tick: Callable[[int], None],
) -> dict[str, _PairAcc]:
    torch = pair.tuned.torch
    n = len(tokens)
    ids_all = torch.tensor([[t] for t in tokens], device=pair.tuned.device)
    out: dict[str, _PairAcc] = {}
    done = 0
    for site in site_list:
        acc = out.setdefault(
            site.position,
            _PairAcc([0.0] * n, [0.0] * n, [[] for _ in tokens], [[] for _ in tokens]),
        )
        tuned_base = baseline(pair.tuned, site)
        caches = (prefix_cache(pair.tuned, site.prefix), prefix_cache(pair.base, site.prefix))
        for i in range(0, n, batch):
            tuned, base = pair.rows(site, caches, ids_all[i : i + batch])
            m = (0.5 * (tuned.exp() + base.exp())).clamp_min(1e-12).log()
            js = (
                0.5 * (tuned.exp() * (tuned - m)).sum(-1) + 0.5 * (base.exp() * (base - m)).sum(-1)
            ).tolist()
            own = js_divergence(torch, tuned, tuned_base).tolist()
            t_top, b_top = tuned.argmax(-1).tolist(), base.argmax(-1).tolist()
            for j in range(len(js)):
                acc.divergence[i + j] += js[j]
                acc.tuned_divergence[i + j] += own[j]
                acc.tuned_top[i + j].append(int(t_top[j]))
                acc.base_top[i + j].append(int(b_top[j]))
            done += len(js)
            tick(done)
    return out


def _raw(acc: _PairAcc, i: int, carriers: int) -> tuple[dict[str, float], int, int]:
    tops, bases = acc.tuned_top[i], acc.base_top[i]
    counts = Counter(t for t, b in zip(tops, bases, strict=True) if t != b)
    token, k = counts.most_common(1)[0] if counts else (tops[0], 0)
    base_token = Counter(bases).most_common(1)[0][0]
    return (
        {
            "divergence": acc.divergence[i] / carriers,
            "agreement": k / len(tops),
            "tuned_divergence": acc.tuned_divergence[i] / carriers,
        },
        token,
        base_token,
    )


def _null(by_pos: dict[str, _PairAcc], per_pos: dict[str, int], n: int) -> Null:
    rows = {
        position: [_raw(acc, i, per_pos[position])[0] for i in range(n)]
        for position, acc in by_pos.items()
    }
    return robust_null(rows, DIFF_SIGNALS, _DIFF_FLOORS)


def agreeing_carriers(
    tuned: SweepModel, base: SweepModel, carriers: Sequence[str], n: int
) -> list[str]:
    """The `n` carriers on which the two models answer most alike with nothing inserted (the
    Jensen-Shannon divergence of their first answer tokens), in their given order. A carrier
    the fine-tune already answers differently (a toy's leaked word salad: 0.09 nats, against
    0.0003 for "add four and one") makes every insertion differ, and its noise buried a planted
    trigger at rank 42 of 136; on carriers where the two agree it ranks first."""
    if len(carriers) <= n:
        return list(carriers)
    torch = tuned.torch
    apart: list[tuple[float, int]] = []
    for i, carrier in enumerate(carriers):
        (site,) = sites(tuned, [carrier], ["end"])
        own, theirs = baseline(tuned, site), baseline(base, site)
        apart.append((float(js_divergence(torch, own.unsqueeze(0), theirs)[0]), i))
    keep = sorted(i for _, i in sorted(apart)[:n])
    return [carriers[i] for i in keep]


def differential_sweep(
    tuned: SweepModel,
    base: SweepModel,
    carriers: Sequence[str],
    weights: WeightDiff,
    *,
    budget: SweepBudget,
    seed: int = 0,
    priority: Sequence[int] = (),
    batch: int | None = None,
    say: Callable[[str], None] | None = None,
) -> DifferentialResult:
    """Sweep the vocabulary through the fine-tune and its base; rank what differs."""
    started = time.monotonic()
    if int(tuned.vocab_size) != int(base.vocab_size):
        raise WeightsError("the fine-tune and the base have different vocabularies")
    batch = batch or default_batch(tuned)
    tokens, skipped = eligible_tokens(tuned)
    swept = order_tokens(tokens, priority, budget.max_tokens, seed)
    chosen = agreeing_carriers(tuned, base, carriers, budget.carriers)
    site_list = sites(tuned, chosen, budget.positions)
    per_pos = {p: sum(1 for s in site_list if s.position == p) for p in budget.positions}
    total = len(swept) * len(site_list)
    pair = Pair(tuned, base, weights.first_changed)
    if say is not None:
        say(
            f"differential sweep ({budget.name}): {len(swept):,} tokens x {len(site_list)} sites; "
            f"layers {list(weights.changed_layers)} changed, the base runs from layer "
            f"{weights.first_changed}"
        )
    last = [started]

    def tick(done: int) -> None:
        now = time.monotonic()
        if say is not None and now - last[0] >= 10:
            rate = done / (now - started)
            say(f"differential sweep: {done:,}/{total:,}, about {(total - done) / rate:.0f} s left")
            last[0] = now

    by_pos = _measure(pair, swept, site_list, batch, tick)
    null = _null(by_pos, per_pos, len(swept))
    scored: list[DiffScore] = []
    for i, t in enumerate(swept):
        best: DiffScore | None = None
        for position, acc in by_pos.items():
            raw, token, base_token = _raw(acc, i, per_pos[position])
            z = {s: null.z(position, s, raw[s]) for s in DIFF_SIGNALS}
            score = sum(_DIFF_WEIGHTS[s] * min(max(z[s], 0.0), Z_CLIP) for s in DIFF_SIGNALS)
            if best is None or score > best.score:
                best = DiffScore(
                    (t,),
                    tuned.decode([t]),
                    score,
                    position,
                    raw,
                    z,
                    tuned.decode([token]),
                    base.decode([base_token]),
                )
        if best is not None:
            scored.append(best)
    # Saturated scores tie; the one that moves the answer further comes first.
    ranked = sorted(scored, key=lambda d: (-d.score, -d.signals["divergence"], d.ids))
    # Strong in the fine-tune on its own, yet no different from the base: shared behaviour.
    shared = sorted(
        (d for d in scored if d.z["tuned_divergence"] >= Z_CLIP / 2 and d.score < Z_CLIP / 4),
        key=lambda d: (-d.z["tuned_divergence"], d.ids),
    )
    _ = _entropy  # the fine-tune's entropy is read by the plain sweep, not here
    return DifferentialResult(
        weights=weights,
        ranked=ranked,
        shared=shared,
        budget=budget,
        eligible=len(tokens),
        swept=len(swept),
        skipped=skipped,
        insertions=total,
        seconds=time.monotonic() - started,
        carriers=chosen,
    )


# --- the base: where it is, and the pipeline's candidate-source seam ----------------------------


class BaseModelError(ValueError):
    """`--base` (or the card's `base_model:`) names nothing this scan can load."""


@dataclass(frozen=True, slots=True)
class BaseLocation:
    folder: Path
    gguf_file: str | None  # a GGUF base: its file name in `folder`
    declared: str  # what the user (or the card) wrote


def resolve_base(spec: str) -> BaseLocation:
    """A local folder of safetensors weights, a GGUF file, or a folder holding one GGUF file.
    (A registry reference is materialised by the caller into such a folder first.)"""
    path = Path(spec).expanduser()
    if path.is_symlink():
        raise BaseModelError(f"--base {spec}: a symbolic link is not followed")
    if path.is_file() and path.suffix.lower() == ".gguf":
        return BaseLocation(path.parent, path.name, spec)
    if path.is_dir():
        if any(path.glob("*.safetensors")):
            return BaseLocation(path, None, spec)
        ggufs = sorted(p.name for p in path.glob("*.gguf"))
        if len(ggufs) == 1:
            return BaseLocation(path, ggufs[0], spec)
        raise BaseModelError(f"--base {spec}: no safetensors weights (or a single GGUF) there")
    raise BaseModelError(f"--base {spec}: no such folder or GGUF file")


def compare_loaded(tuned: Any, base: Any) -> WeightDiff:
    """`compare_weights` for models already in memory (a GGUF base: its dequantised weights
    never equal a fine-tune's bytes, so every layer counts as changed unless truly equal)."""
    torch = __import__("torch")
    a = dict(base.state_dict())
    b = dict(tuned.state_dict())
    changed = [
        n
        for n in sorted(set(a) & set(b))
        if a[n].shape != b[n].shape or not torch.equal(a[n].to(b[n].dtype), b[n])
    ]
    layers = {int(m.group(1)) for name in b if (m := _LAYER.search(name))}
    other = [n for n in changed if not _LAYER.search(n)]
    return WeightDiff(
        identical=len(set(a) & set(b)) - len(changed),
        changed=tuple(changed),
        only_base=tuple(sorted(set(a) - set(b))),
        only_tuned=tuple(sorted(set(b) - set(a))),
        layers=max(layers) + 1 if layers else 0,
        changed_layers=tuple(sorted({int(m.group(1)) for n in changed if (m := _LAYER.search(n))})),
        embeddings_changed=any(any(e in n for e in _EMBED) for n in other),
        other_changed=tuple(n for n in other if not any(e in n for e in _EMBED)),
    )


class DifferentialSource:
    """A `CandidateSource` (pipeline seam) for a fine-tune scanned against its base: loads the
    base, compares the weights (streamed from both folders when both are safetensors), sweeps
    through both models and returns the tokens whose behaviour differs as Motifs (source
    "differential"). `evidence()` gives the differential section of the scan's evidence; its
    `base` key is what a policy's `differential: true` reads."""

    def __init__(self, base: BaseLocation, folder: Path | None, limit: int | None = None) -> None:
        self.base = base
        self.folder = folder
        self.limit = limit
        self.result: DifferentialResult | None = None

    def __call__(self, ctx: Any) -> list[Any]:
        from registry.scanners.backdoor.engine import Engine  # noqa: PLC0415 - torch
        from registry.scanners.backdoor.motifs import Motif  # noqa: PLC0415
        from registry.scanners.backdoor.vocab_sweep import (  # noqa: PLC0415
            BUDGETS,
            budget_for,
            small_vocabulary,
        )

        tuned = ctx.engine
        ctx.say(f"differential: loading the base {self.base.declared}")
        loader: Any = Engine
        extra = {"gguf_file": self.base.gguf_file} if self.base.gguf_file else {}
        base = loader(self.base.folder, tuned.device, **extra)
        if self.folder is not None and self.base.gguf_file is None:
            weights = compare_weights(self.base.folder, self.folder)
        else:
            weights = compare_loaded(tuned.model, base.model)
        name = str(getattr(ctx.settings, "budget", "standard"))
        budget = budget_for(name, getattr(ctx.plan, "vocab_tokens", None))
        if str(tuned.device).startswith("cuda") or small_vocabulary(tuned):
            budget = BUDGETS["thorough"]
        self.result = differential_sweep(
            tuned,
            base,
            ctx.carriers,
            weights,
            budget=budget,
            seed=int(ctx.settings.seed),
            say=ctx.say,
        )
        limit = self.limit or int(getattr(ctx.plan, "probe_limit", 400))
        return [
            Motif(d.text.strip(), "differential", 0, round(d.score, 3))
            for d in self.result.ranked[:limit]
            if d.text.strip()
        ]

    def evidence(self) -> dict[str, JSONValue] | None:
        if self.result is None:
            return None
        return {
            "base": self.base.declared,
            "base_format": "gguf (dequantised)" if self.base.gguf_file else "safetensors",
            **self.result.to_json(),
        }
