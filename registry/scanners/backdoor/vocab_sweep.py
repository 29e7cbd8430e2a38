"""Whole-vocabulary first-token sweep: candidate triggers that need no leakage.

For each carrier prompt and insertion position (start: right after the user-turn prefix; end:
right before the assistant turn), the shared prefix is run once and its KV cache reused:
thousands of single-token insertions are then batched, each token followed by the rest of the
prompt, and only the first answer token's distribution (and the attention the inserted token
draws) is read. No generation, no leakage. A token is scored by three signals, each normalised
against the swept vocabulary itself (the model's own null: median and MAD over every token):

* divergence: Jensen-Shannon divergence of the first answer token's distribution from the
  no-insertion distribution of the same carrier;
* entropy collapse: how much more certain the first answer token becomes;
* attention: the share of the answer position's attention (upper half of the layers, mean
  over heads) that lands on the inserted token;

plus agreement: the share of carriers whose top answer token is one and the same token, which
differs from the carrier's own (a planted target starts the same way whatever the prompt).
The best tokens are then extended greedily into phrases (one token left or right at a time,
kept while the phrase scores clearly better), scored with the same machinery.

Everything here imports torch lazily (inside functions): the `ml` extra is optional.
"""

from __future__ import annotations

import functools
import math
import random
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from registry.scanners.base import JSONValue

POSITIONS = ("start", "end")
#: Decoded forms that mark tokens no prompt would carry as a word (byte fallbacks, unused slots).
_UNUSED_MARKS = ("<unused", "[unused", "<extra_id", "<|reserved", "<reserved")
SIGNALS = ("divergence", "entropy", "attention", "agreement")
WEIGHTS = {"divergence": 1.0, "entropy": 0.5, "attention": 0.5, "agreement": 1.0}
#: Spread floors for the robust z of each signal: the vocabulary's MAD is often ~0 for
#: agreement (most tokens move no answer), and a z over a zero spread would be meaningless.
_FLOORS = {"divergence": 0.02, "entropy": 0.1, "attention": 0.02, "agreement": 0.1}
#: z is clipped to [0, Z_CLIP] in the score: one saturated signal cannot outvote the others.
Z_CLIP = 20.0


class SweepModel(Protocol):
    """What the sweep needs of the model under scan (`engine.Engine` has it)."""

    torch: Any
    model: Any
    tok: Any
    device: str
    user_prefix: str
    assistant_prefix: str
    bos_ids: list[int]
    special_ids: set[int]
    vocab_size: int

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...


@dataclass(frozen=True, slots=True)
class SweepBudget:
    """How much of the vocabulary a sweep covers: carriers per position, positions, and at most
    `max_tokens` tokens (None: every eligible one). Tokens beyond the cap are a seeded random
    subset (uniform coverage), after any `priority` tokens the caller names."""

    name: str
    carriers: int
    positions: tuple[str, ...]
    max_tokens: int | None
    extend_top: int  # best tokens extended into phrases
    extend_with: int  # tokens tried on each side per extension step
    max_phrase: int  # tokens

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "name": self.name,
            "carriers": self.carriers,
            "positions": list(self.positions),
            "max_tokens": self.max_tokens,
            "extend_top": self.extend_top,
            "extend_with": self.extend_with,
            "max_phrase": self.max_phrase,
        }


#: Sized by the cost measured on SmolLM2-135M (ADR 0023): about 94 CPU-ms per insertion at the
#: end of a prompt and 115 at the start with 2 threads, i.e. about 21 and 17 insertions/s on an
#: idle 2-core CPU (3 to 7 times fewer under the shared machine's load). `fast` sweeps 1,024
#: tokens at one site (about 1 minute idle, 2.1% of SmolLM2's vocabulary), `standard` 2,048 at
#: two (about 3.5 minutes, 4.2%), `thorough` everything at four (about 3 hours on that CPU;
#: minutes on a GPU). Tokens the leakage stage saw go first. Small vocabularies are always
#: swept whole.
BUDGETS: dict[str, SweepBudget] = {
    "fast": SweepBudget("fast", 1, ("end",), 1024, 4, 16, 3),
    "standard": SweepBudget("standard", 1, ("start", "end"), 2048, 6, 24, 4),
    "thorough": SweepBudget("thorough", 2, ("start", "end"), None, 8, 32, 5),
}


@dataclass(frozen=True, slots=True)
class TokenScore:
    ids: tuple[int, ...]
    text: str
    score: float
    position: str
    signals: dict[str, float]  # raw means (divergence, entropy, attention, agreement)
    z: dict[str, float]  # robust z against the swept vocabulary
    top_answer: str  # the first answer token most carriers move to

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "text": self.text,
            "ids": list(self.ids),
            "score": round(self.score, 3),
            "position": self.position,
            "signals": {k: round(v, 4) for k, v in self.signals.items()},
            "z": {k: round(v, 2) for k, v in self.z.items()},
            "top_answer": self.top_answer,
        }


@dataclass(frozen=True, slots=True)
class Skipped:
    special: int = 0
    byte: int = 0
    unused: int = 0
    blank: int = 0

    @property
    def total(self) -> int:
        return self.special + self.byte + self.unused + self.blank


@dataclass(slots=True)
class SweepResult:
    ranked: list[TokenScore]  # tokens, best first (phrases merged in)
    phrases: list[TokenScore]  # extensions kept, best first
    budget: SweepBudget
    eligible: int
    swept: int
    skipped: Skipped
    insertions: int  # (token, carrier, position) forward rows
    seconds: float
    carriers: list[str] = field(default_factory=list)

    @property
    def coverage(self) -> float:
        return self.swept / self.eligible if self.eligible else 1.0

    @property
    def tokens_per_second(self) -> float:
        return self.insertions / self.seconds if self.seconds > 0 else 0.0

    def to_json(self, top: int = 10) -> dict[str, JSONValue]:
        return {
            "budget": self.budget.to_json(),
            "vocabulary": {
                "eligible": self.eligible,
                "swept": self.swept,
                "coverage": round(self.coverage, 4),
                "skipped": {
                    "special": self.skipped.special,
                    "byte": self.skipped.byte,
                    "unused": self.skipped.unused,
                    "blank": self.skipped.blank,
                },
            },
            "insertions": self.insertions,
            "insertions_per_second": round(self.tokens_per_second, 1),
            "seconds": round(self.seconds, 3),
            "carriers": list(self.carriers),
            "top": [t.to_json() for t in self.ranked[:top]],
            "phrases": [t.to_json() for t in self.phrases[:top]],
        }


# --- the vocabulary ---------------------------------------------------------------------------


def eligible_tokens(engine: SweepModel) -> tuple[list[int], Skipped]:
    """Token ids a prompt could carry as text: special, byte-fallback, unused and blank tokens
    are skipped (and counted)."""
    special = byte = unused = blank = 0
    out: list[int] = []
    convert = getattr(engine.tok, "convert_ids_to_tokens", None)
    for i in range(engine.vocab_size):
        if i in engine.special_ids:
            special += 1
            continue
        raw = str(convert(i)) if convert is not None else ""
        if raw.startswith("<0x") and raw.endswith(">"):
            byte += 1
            continue
        if raw.startswith(_UNUSED_MARKS):
            unused += 1
            continue
        text = engine.decode([i])
        if not text.strip():
            blank += 1
            continue
        if "\ufffd" in text:  # a partial UTF-8 sequence (byte-level BPE pieces of one char)
            byte += 1
            continue
        out.append(i)
    return out, Skipped(special, byte, unused, blank)


def order_tokens(
    tokens: Sequence[int], priority: Sequence[int], cap: int | None, seed: int
) -> list[int]:
    """`priority` tokens first (those eligible), then a seeded shuffle of the rest, cut at `cap`."""
    allowed = set(tokens)
    first = [t for t in dict.fromkeys(priority) if t in allowed]
    chosen = set(first)
    rest = [t for t in tokens if t not in chosen]
    random.Random(seed).shuffle(rest)  # noqa: S311 - reproducible coverage, not crypto
    ordered = first + rest
    return ordered if cap is None else ordered[:cap]


# --- one carrier at one position ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Site:
    """A carrier prompt split at an insertion point: prefix ids (cached) and suffix ids."""

    carrier: str
    position: str
    prefix: list[int]
    suffix: list[int]


def sites(
    engine: SweepModel, carriers: Sequence[str], positions: Sequence[str], separator: str = ""
) -> list[Site]:
    """Carrier prompts split at each insertion point; `separator` goes between a start
    insertion and the carrier (the word-group sweep's words need a space, tokens do not)."""
    head = engine.bos_ids + engine.encode(engine.user_prefix)
    tail = engine.encode(engine.assistant_prefix)
    out: list[Site] = []
    for position in positions:
        for c in carriers:
            body = engine.encode(c)
            if position == "start":
                out.append(Site(c, position, head, engine.encode(separator + c) + tail))
            else:
                out.append(Site(c, position, head + body, tail))
    return out


@dataclass(frozen=True, slots=True)
class Rows:
    """Per insertion row: first-answer-token log-probs and the attention on the insertion."""

    logp: Any  # [B, V] float32
    attention: Any  # [B] float32; None where not measured


class Forward(Protocol):
    def __call__(self, site: Site, cache: Any, inserted: Any) -> Rows: ...


def prefix_cache(engine: SweepModel, ids: Sequence[int]) -> Any:
    torch = engine.torch
    with torch.inference_mode():
        res = engine.model(
            input_ids=torch.tensor([list(ids)], device=engine.device), use_cache=True
        )
    return res.cache


def expand_cache(engine: SweepModel, cache: Any, batch: int) -> Any:
    """A cache that serves `cache`'s keys and values (the prefix, computed once) to `batch`
    rows, for one forward pass. Nothing is copied or kept: each layer is handed the prefix's
    expanded views with the batch's own keys and values appended, and drops them again (a
    `DynamicCache` copies the prefix per row and keeps every layer's keys and values for the
    whole pass: 140 MB for 64 rows of SmolLM2, a quarter of the sweeps' memory)."""
    from transformers.cache_utils import Cache  # noqa: PLC0415 - optional: the ml extra

    layer_class = _read_only_layer()
    layers = [
        layer_class(layer.keys.expand(batch, -1, -1, -1), layer.values.expand(batch, -1, -1, -1))
        for layer in cache.layers
    ]
    return Cache(layers=layers)


@functools.cache
def _read_only_layer() -> type:
    import torch  # noqa: PLC0415 - optional: the ml extra
    from transformers import cache_utils  # noqa: PLC0415

    base: Any = cache_utils.DynamicLayer  # untyped in transformers

    class ReadOnlyPrefix(base):  # type: ignore[misc]
        """A prefix's keys and values; `update` answers with the batch's appended, keeps none."""

        def __init__(self, keys: Any, values: Any) -> None:
            super().__init__()
            self.keys, self.values = keys, values
            self.device = keys.device
            self.is_initialized = True

        def update(self, key_states: Any, value_states: Any, *_: Any, **__: Any) -> Any:
            return (
                torch.cat([self.keys, key_states], dim=-2),
                torch.cat([self.values, value_states], dim=-2),
            )

    return ReadOnlyPrefix


def upper_layers(engine: SweepModel) -> list[int]:
    n = int(engine.model.config.num_hidden_layers)
    return list(range(n // 2, n))


def run_rows(
    engine: SweepModel, site: Site, cache: Any, inserted: Any, *, attention: bool = True
) -> Rows:
    """One batch: `inserted` [B, k] token ids at the site, the suffix after them; without
    `attention`, the attention the answer position pays the insertion is not measured (every
    layer's attention weights kept for the batch are the sweep's largest tensors)."""
    torch = engine.torch
    b, k = inserted.shape
    suffix = torch.tensor(site.suffix, device=engine.device).expand(b, -1)
    ids = torch.cat([inserted, suffix], dim=1)
    start = len(site.prefix)
    pos = torch.arange(start, start + ids.shape[1], device=engine.device).expand(b, -1)
    with torch.inference_mode():
        res = engine.model(
            input_ids=ids,
            position_ids=pos,
            cache=expand_cache(engine, cache, b),
            use_cache=True,
            output_attentions=attention,
            logits_to_keep=1,  # only the answer position's logits (the head is 49k wide)
        )
    logp = torch.log_softmax(res.logits[:, -1, :].float(), -1)
    if not attention:
        return Rows(logp, None)
    layers = upper_layers(engine)
    att = torch.stack([res.attentions[i][:, :, -1, start : start + k].float() for i in layers])
    return Rows(logp, att.sum(-1).mean((0, 2)))


def baseline(engine: SweepModel, site: Site) -> Any:
    """log-probs of the first answer token without any insertion."""
    torch = engine.torch
    with torch.inference_mode():
        res = engine.model(
            input_ids=torch.tensor([site.prefix + site.suffix], device=engine.device),
            use_cache=False,
            logits_to_keep=1,
        )
    return torch.log_softmax(res.logits[0, -1, :].float(), -1)


def _entropy(torch: Any, logp: Any) -> Any:
    return -(logp.exp() * logp).sum(-1)


def js_divergence(torch: Any, logp: Any, base: Any) -> Any:
    """Jensen-Shannon divergence (nats) of each row of `logp` [B, V] from `base` [V]."""
    p, q = logp.exp(), base.exp().unsqueeze(0)
    m = (0.5 * (p + q)).clamp_min(1e-12).log()
    return 0.5 * (p * (logp - m)).sum(-1) + 0.5 * (q * (base.unsqueeze(0) - m)).sum(-1)


@dataclass(slots=True)
class _Acc:
    """Signals per candidate summed over the carriers of one position."""

    divergence: list[float]
    entropy: list[float]
    attention: list[float]
    tops: list[list[int]]  # per candidate, the top answer token at each carrier
    moved: list[list[bool]]  # ... and whether it differs from the carrier's own

    @classmethod
    def empty(cls, n: int) -> _Acc:
        return cls([0.0] * n, [0.0] * n, [0.0] * n, [[] for _ in range(n)], [[] for _ in range(n)])


def measure(
    engine: SweepModel,
    candidates: Sequence[Sequence[int]],
    site_list: Sequence[Site],
    *,
    batch: int,
    forward: Forward | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, _Acc]:
    """Raw signals of every candidate (all of one length) at every site, grouped by position."""
    torch = engine.torch
    fwd: Forward = forward or (lambda s, c, x: run_rows(engine, s, c, x))
    out: dict[str, _Acc] = {}
    n = len(candidates)
    ids_all = torch.tensor([list(c) for c in candidates], device=engine.device)
    done = 0
    for site in site_list:
        acc = out.setdefault(site.position, _Acc.empty(n))
        base = baseline(engine, site)
        base_h = float(_entropy(torch, base))
        base_top = int(base.argmax())
        cache = prefix_cache(engine, site.prefix)
        for i in range(0, n, batch):
            rows = fwd(site, cache, ids_all[i : i + batch])
            js = js_divergence(torch, rows.logp, base).tolist()
            ent = (base_h - _entropy(torch, rows.logp)).tolist()
            att = rows.attention.tolist()
            tops = rows.logp.argmax(-1).tolist()
            for j in range(len(js)):
                acc.divergence[i + j] += js[j]
                acc.entropy[i + j] += ent[j]
                acc.attention[i + j] += att[j]
                acc.tops[i + j].append(int(tops[j]))
                acc.moved[i + j].append(int(tops[j]) != base_top)
            done += len(js)
            if progress is not None:
                progress(done)
    return out


def agreement(tops: Sequence[int], moved: Sequence[bool]) -> tuple[float, int]:
    """Share of carriers moved to the most common top answer token, and that token."""
    counts = Counter(t for t, m in zip(tops, moved, strict=True) if m)
    if not counts:
        return 0.0, tops[0] if tops else -1
    token, k = counts.most_common(1)[0]
    return k / len(tops), token


@dataclass(frozen=True, slots=True)
class Null:
    """The swept vocabulary's median and spread per signal and position (the null)."""

    centre: dict[tuple[str, str], float]
    spread: dict[tuple[str, str], float]

    def z(self, position: str, signal: str, value: float) -> float:
        key = (position, signal)
        return (value - self.centre[key]) / self.spread[key]


def _signals(acc: _Acc, i: int, carriers: int) -> tuple[dict[str, float], int]:
    agree, token = agreement(acc.tops[i], acc.moved[i])
    return {
        "divergence": acc.divergence[i] / carriers,
        "entropy": acc.entropy[i] / carriers,
        "attention": acc.attention[i] / carriers,
        "agreement": agree,
    }, token


def robust_null(
    rows_by_position: dict[str, list[dict[str, float]]],
    signals: Sequence[str],
    floors: dict[str, float],
) -> Null:
    """Each signal's centre (median) and spread (1.4826 x MAD, never below its floor) per
    insertion site, over every swept token: the vocabulary is its own null distribution."""
    centre: dict[tuple[str, str], float] = {}
    spread: dict[tuple[str, str], float] = {}
    for position, rows in rows_by_position.items():
        for s in signals:
            centre[position, s], spread[position, s] = robust_centre(
                [r[s] for r in rows], floors[s]
            )
    return Null(centre, spread)


def robust_centre(values: Sequence[float], floor: float) -> tuple[float, float]:
    """The median and the spread (1.4826 x MAD, never below `floor`) of `values`."""
    med = statistics.median(values)
    mad = statistics.median([abs(v - med) for v in values])
    return med, max(1.4826 * mad, floor)


def fit_null(by_pos: dict[str, _Acc], carriers: dict[str, int], n: int) -> Null:
    rows = {
        position: [_signals(acc, i, carriers[position])[0] for i in range(n)]
        for position, acc in by_pos.items()
    }
    return robust_null(rows, SIGNALS, _FLOORS)


def score_all(
    engine: SweepModel,
    candidates: Sequence[Sequence[int]],
    by_pos: dict[str, _Acc],
    carriers: dict[str, int],
    null: Null,
) -> list[TokenScore]:
    out: list[TokenScore] = []
    for i, ids in enumerate(candidates):
        best: TokenScore | None = None
        for position, acc in by_pos.items():
            raw, token = _signals(acc, i, carriers[position])
            z = {s: null.z(position, s, raw[s]) for s in SIGNALS}
            score = sum(WEIGHTS[s] * min(max(z[s], 0.0), Z_CLIP) for s in SIGNALS)
            if best is None or score > best.score:
                best = TokenScore(
                    ids=tuple(ids),
                    text=engine.decode(list(ids)),
                    score=score,
                    position=position,
                    signals=raw,
                    z=z,
                    top_answer=engine.decode([token]) if token >= 0 else "",
                )
        if best is not None:
            out.append(best)
    return out


# --- the sweep --------------------------------------------------------------------------------


def default_batch(engine: SweepModel) -> int:
    """Rows per forward pass: large on a GPU; 64 on a CPU, where every row's copy of the
    prefix's keys and values is what costs memory (SmolLM2-135M: 256 rows took 880 MiB above
    the loaded model, 64 rows nothing measurable, at the same 22 ms per insertion)."""
    return 1024 if str(engine.device).startswith("cuda") else 64


def sweep(
    engine: SweepModel,
    carriers: Sequence[str],
    *,
    budget: SweepBudget,
    seed: int = 0,
    priority: Sequence[int] = (),
    batch: int | None = None,
    forward: Forward | None = None,
    say: Callable[[str], None] | None = None,
) -> SweepResult:
    """Sweep the vocabulary (as far as `budget` allows) through `carriers`; rank tokens and
    extend the best into phrases. `forward` replaces the plain forward pass (the differential
    mode uses it); `priority` tokens are swept first (e.g. the leakage stage's words)."""
    started = time.monotonic()
    batch = batch or default_batch(engine)
    tokens, skipped = eligible_tokens(engine)
    swept = order_tokens(tokens, priority, budget.max_tokens, seed)
    chosen = list(carriers)[: budget.carriers]
    site_list = sites(engine, chosen, budget.positions)
    per_pos = {p: sum(1 for s in site_list if s.position == p) for p in budget.positions}
    total = len(swept) * len(site_list)
    last = [started]

    def tick(done: int) -> None:
        now = time.monotonic()
        if say is not None and now - last[0] >= 10 and done:
            rate = done / (now - started)
            left = (total - done) / rate if rate else math.inf
            say(f"vocabulary sweep: {done:,}/{total:,} insertions, about {left:.0f} s left")
            last[0] = now

    if say is not None:
        say(
            f"vocabulary sweep ({budget.name}): {len(swept):,} of {len(tokens):,} tokens "
            f"x {len(site_list)} carrier sites ({skipped.total:,} special/byte/unused skipped)"
        )
    singles = [[t] for t in swept]
    by_pos = measure(engine, singles, site_list, batch=batch, forward=forward, progress=tick)
    null = fit_null(by_pos, per_pos, len(singles))
    ranked = score_all(engine, singles, by_pos, per_pos, null)
    ranked.sort(key=lambda t: (-t.score, -strength(t), t.ids))
    insertions = total
    phrases, extra = extend(
        engine, ranked, site_list, per_pos, null, budget, batch=batch, forward=forward
    )
    insertions += extra
    merged = sorted([*ranked, *phrases], key=lambda t: (-t.score, -strength(t), len(t.ids), t.ids))
    return SweepResult(
        ranked=merged,
        phrases=phrases,
        budget=budget,
        eligible=len(tokens),
        swept=len(swept),
        skipped=skipped,
        insertions=insertions,
        seconds=time.monotonic() - started,
        carriers=chosen,
    )


#: An extension is kept only when it scores this much better than the phrase it extends, and
#: moves the answer (divergence x agreement, raw) this much further.
EXTEND_MARGIN = 1.0
EXTEND_STRENGTH = 0.05


def strength(t: TokenScore) -> float:
    """How far and how consistently the phrase moves the first answer token (raw, 0..~0.7)."""
    return t.signals["divergence"] * (0.5 + 0.5 * t.signals["agreement"])


def extend(  # noqa: PLR0917 - internal, called from `sweep`
    engine: SweepModel,
    ranked: Sequence[TokenScore],
    site_list: Sequence[Site],
    per_pos: dict[str, int],
    null: Null,
    budget: SweepBudget,
    *,
    batch: int,
    forward: Forward | None,
) -> tuple[list[TokenScore], int]:
    """Greedy left/right extension of the best tokens, one token per step, scored like them
    (against the single-token null): a multi-token trigger whose parts each move the answer a
    little grows back into the whole phrase."""
    pool = [t.ids[0] for t in ranked[: budget.extend_with]]
    single = {t.ids[0]: t for t in ranked if len(t.ids) == 1}
    kept: list[TokenScore] = []
    rows = 0
    for start in ranked[: budget.extend_top]:
        current = start
        while len(current.ids) < budget.max_phrase:
            tries = [(u, *current.ids) for u in pool if u not in current.ids]
            tries += [(*current.ids, u) for u in pool if u not in current.ids]
            if not tries:
                break
            by_pos = measure(engine, tries, site_list, batch=batch, forward=forward)
            rows += len(tries) * len(site_list)
            scored = score_all(engine, tries, by_pos, per_pos, null)
            top = max(scored, key=lambda t: (t.score, [-i for i in t.ids]))
            # Better than the phrase it extends and than each of its tokens alone: a weak
            # token next to a strong one is the strong one, not a longer trigger.
            parts = [single[i] for i in top.ids if i in single] + [current]
            if any(
                top.score < p.score + EXTEND_MARGIN or strength(top) < strength(p) + EXTEND_STRENGTH
                for p in parts
            ):
                break
            current = top
        if len(current.ids) > 1 and all(k.ids != current.ids for k in kept):
            kept.append(current)
    kept.sort(key=lambda t: (-t.score, t.ids))
    return kept, rows


# --- the pipeline's candidate-source seam ------------------------------------------------------


class DiscoveryLike(Protocol):
    """The parts of the pipeline's `DiscoveryContext` a sweep reads (structural, so this module
    imports nothing of the pipeline)."""

    @property
    def engine(self) -> Any: ...
    @property
    def settings(self) -> Any: ...
    @property
    def plan(self) -> Any: ...
    @property
    def carriers(self) -> list[str]: ...
    @property
    def samples(self) -> Sequence[Any]: ...
    @property
    def say(self) -> Callable[[str], None]: ...


#: A vocabulary this small is swept whole, at the `thorough` budget's sites (seconds).
SMALL_VOCABULARY = 4096


def small_vocabulary(engine: Any) -> bool:
    return int(engine.vocab_size) <= SMALL_VOCABULARY


def budget_for(name: str, vocab_tokens: int | None) -> SweepBudget:
    """The sweep budget named `name`, its token cap replaced by the plan's `vocab_tokens`
    (None, or more than any vocabulary: the whole vocabulary)."""
    base = BUDGETS.get(name, BUDGETS["standard"])
    cap = None if vocab_tokens is None or vocab_tokens >= 1 << 24 else vocab_tokens
    return SweepBudget(
        base.name,
        base.carriers,
        base.positions,
        cap if cap is None or base.max_tokens is None else max(cap, 1),
        base.extend_top,
        base.extend_with,
        base.max_phrase,
    )


def leaked_tokens(engine: Any, samples: Sequence[Any]) -> list[int]:
    """Single-token words of the leaked user turns and responses, most frequent first: swept
    before the rest when the budget covers only part of the vocabulary."""
    counts: Counter[int] = Counter()
    for s in samples:
        for text in (getattr(s, "user", ""), getattr(s, "response", "")):
            for word in str(text).split():
                for form in (word, f" {word}"):
                    ids = engine.encode(form)
                    if len(ids) == 1:
                        counts[ids[0]] += 1
    return [t for t, _ in counts.most_common()]


class SweepSource:
    """A `CandidateSource` (pipeline seam): the sweep's ranked tokens and phrases as Motifs
    (source "sweep", score = the sweep's score). The last result stays in `result` for the
    evidence (`evidence()`)."""

    def __init__(self, limit: int | None = None) -> None:
        self.limit = limit
        self.result: SweepResult | None = None

    def __call__(self, ctx: DiscoveryLike) -> list[Any]:
        from registry.scanners.backdoor.motifs import Motif  # noqa: PLC0415 - no cycle at import

        name = str(getattr(ctx.settings, "budget", "standard"))
        budget = budget_for(name, getattr(ctx.plan, "vocab_tokens", None))
        if small_vocabulary(ctx.engine):
            # Every token at every site, single tokens only: in a vocabulary this small the
            # greedy extension's best of thousands of word pairs derails a clean model as
            # often as a trigger does (two false positives in the toy suite); phrases come
            # from the leakage miner and the pipeline's own extension step instead.
            budget = replace(BUDGETS["thorough"], extend_top=0)
        elif str(getattr(ctx.engine, "device", "cpu")).startswith("cuda"):
            budget = BUDGETS["thorough"]  # cheap on a GPU: sweep everything
        result = sweep(
            ctx.engine,
            ctx.carriers,
            budget=budget,
            seed=int(ctx.settings.seed),
            priority=leaked_tokens(ctx.engine, ctx.samples),
            say=ctx.say,
        )
        self.result = result
        limit = self.limit or int(getattr(ctx.plan, "probe_limit", 400))
        motifs: list[Any] = []
        seen: set[str] = set()
        for t in result.ranked:
            text = t.text.strip()
            if text and text not in seen:
                seen.add(text)
                motifs.append(Motif(text, "sweep", 0, round(t.score, 3)))
            if len(motifs) >= limit:
                break
        return motifs

    def evidence(self) -> dict[str, JSONValue] | None:
        return self.result.to_json() if self.result is not None else None
