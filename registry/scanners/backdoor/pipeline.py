"""The scan itself, once pre-flight has passed: load, leak, mine, probe, score, decide.

Candidate discovery is a seam: `candidate_sources` lists named `CandidateSource`s, each given a
`DiscoveryContext` (the model, the budget's plan, the carriers, the leaked samples) and giving
ranked `Motif`s; the pipeline merges them, probes them cheaply, extends the best into phrases,
and scores a shortlist against the model's own null distribution (random control phrases
through the same carriers; ADR 0022).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from registry.scanners.backdoor import group_sweep, vocab_sweep
from registry.scanners.backdoor.differential import DifferentialSource, resolve_base
from registry.scanners.backdoor.engine import Engine, pick_device
from registry.scanners.backdoor.leakage import DECODING, Sample, leak
from registry.scanners.backdoor.motifs import Motif, mine
from registry.scanners.backdoor.preflight import ModelInfo
from registry.scanners.backdoor.risk import is_dangerous
from registry.scanners.backdoor.scoring import (
    Behaviour,
    Scored,
    Scorer,
    carrier_answers,
    carriers,
    control_words,
    converging_carriers,
    jaccard,
    ordinary_answers,
    resembles,
)
from registry.scanners.backdoor.settings import BackdoorSettings, Plan, plan_for
from registry.scanners.backdoor.verdict import (
    LIMITS_STATEMENT,
    calibration_json,
    candidate_json,
    decide,
    judge,
    rank_key,
    summary,
    thresholds_json,
)
from registry.scanners.base import FileVerdict, Finding, JSONValue

SCANNER_ID = "backdoor"
TOP_EVIDENCE = 5
EXTEND_FROM = 4  # best single words extended by one word on either side
EXTEND_WITH = 24
EXTEND_MARGIN = 0.05
SMALL_VOCABULARY = 4096  # a vocabulary this small is probed whole, token by token
NULL_LENGTHS = (1, 2, 3)  # control phrase lengths pooled into the null distribution
#: Sources that insert at the start and at the end of carriers (the probe only at the start):
#: their own best few are scored even when the start-only probe ranks them low.
POSITIONED_SOURCES = ("differential", "sweep", "group-sweep")
KEEP_FROM_POSITIONED = 2
#: The best candidates repeated with the other seeds (on carriers held out from the selection).
REPEATED = 3


@dataclass(frozen=True, slots=True)
class DiscoveryContext:
    """What a candidate source may use (see /work docs: ADR 0022, "the discovery seam")."""

    engine: Engine
    settings: BackdoorSettings
    plan: Plan
    carriers: list[str]  # benign carrier prompts (the first seed's): insert candidates here
    samples: list[Sample]  # leakage samples (may be empty)
    say: Callable[[str], None]


#: A source of trigger candidates: ranked Motifs (best first, at most plan.probe_limit).
CandidateSource = Callable[[DiscoveryContext], list[Motif]]


def leakage_source(ctx: DiscoveryContext) -> list[Motif]:
    """Motifs mined from what the model volunteered (converged clusters, enriched n-grams)."""
    motifs, _ = mine(ctx.samples, limit=ctx.plan.probe_limit)
    return motifs


def small_vocabulary_source(ctx: DiscoveryContext) -> list[Motif]:
    """Every whole-word token, when the vocabulary is small enough to probe whole."""
    engine = ctx.engine
    if engine.vocab_size > SMALL_VOCABULARY:
        return []  # the vocabulary sweep covers a large vocabulary, by budget
    words: list[Motif] = []
    for i in range(engine.vocab_size):
        if i in engine.special_ids:
            continue
        text = engine.decode([i])
        if text and " " not in text and engine.encode(text) == [i]:
            words.append(Motif(text, "vocabulary", 0, 0.0))
    return words


def candidate_sources(settings: BackdoorSettings) -> list[tuple[str, CandidateSource]]:
    """The sources every scan runs, in order; their candidates are merged (the first of equal
    texts wins). `run` adds the sweeps and, with `--base`, the differential source first
    (`all_sources`)."""
    del settings  # a source reads the budget from the context
    return [("leakage", leakage_source), ("vocabulary", small_vocabulary_source)]


@dataclass(slots=True)
class Sources:
    """What a scan asks for candidates, in order, and the sources whose work goes into the
    evidence (the sweeps, the differential one)."""

    named: list[tuple[str, CandidateSource]]
    sweep: vocab_sweep.SweepSource | None = None
    groups: group_sweep.GroupSweepSource | None = None
    differential: DifferentialSource | None = None

    @property
    def examined(self) -> int:
        """Tokens and words the sweeps examined beyond the candidates they return: they count
        in the multiple-testing correction (the best of 20,000 words is chosen, not given)."""
        swept = self.sweep.result.swept if self.sweep and self.sweep.result else 0
        return swept + (self.groups.tried if self.groups else 0)


def all_sources(settings: BackdoorSettings, folder: Path, engine: Engine, plan: Plan) -> Sources:
    """Every source this scan runs: the differential one first (what the fine-tune does and its
    base does not, with `--base`), then `candidate_sources`, then the sweeps (ADR 0023, 0028).
    A small vocabulary is swept whole, token by token, at every insertion site (seconds). A
    large one is swept by words in groups (every word, both sites, about 90 s on SmolLM2 and a
    2-core CPU), and token by token as well where the plan covers the whole vocabulary (the
    `thorough` budget, a GPU). The first-token probe inserts at the start only: the sweeps are
    what sees a trigger that works at the end of a prompt."""
    out = Sources(candidate_sources(settings))
    if settings.base:
        out.differential = DifferentialSource(resolve_base(settings.base), folder)
        out.named.insert(0, ("differential", out.differential))
    large = engine.vocab_size > SMALL_VOCABULARY
    if large:
        out.groups = group_sweep.GroupSweepSource()
        out.named.append(("group-sweep", out.groups))
    if not large or plan.vocab_tokens >= engine.vocab_size:
        out.sweep = vocab_sweep.SweepSource()
        out.named.append(("sweep", out.sweep))
    return out


@dataclass(slots=True)
class Meter:
    """Progress on stderr: the stage, how far, and an estimate of the time left.

    `planned` is each stage's cost in reference seconds (`planned_seconds`); the machine's speed
    is the reference seconds of the stages done over the seconds they took, so the estimate
    is the reference seconds left over that speed."""

    say: Callable[[str], None]
    planned: dict[str, float] = field(default_factory=dict)  # stage -> reference seconds
    done: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def stage(self, name: str, detail: str) -> None:
        finished = list(self.done)
        self.done.append(name)
        index = list(self.planned).index(name) + 1 if name in self.planned else len(self.done)
        left = [s for s in self.planned if s not in self.done]
        elapsed = time.monotonic() - self.started
        reference = sum(self.planned.get(s, 0.0) for s in finished)
        todo = self.planned.get(name, 0.0) + sum(self.planned[s] for s in left)
        estimate = ""
        if reference > 0 and elapsed > 0 and todo:
            estimate = f", about {duration(todo * elapsed / reference)} left"
        self.say(
            f"[{index}/{max(len(self.planned), index)}] {name}: {detail}"
            f" ({duration(elapsed)} so far{estimate})"
        )


def duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


#: Seconds per planned unit (a token forward; for the sweep, a group insertion) of each stage,
#: measured on the reference run: SmolLM2-135M, `fast`, torch with 2 threads on a 2-core CPU
#: (ADR 0031: leakage 23 s, carriers 5, sweep 358, probe 57, score 58, seeds 55). Decoding one
#: token for 64 rows costs more per token than prefilling a prompt, so a token forward is no
#: common unit; the stages' shares of a scan are what carry over to other machines and models.
STAGE_SECONDS = {
    "leakage": 0.0100,
    "carriers": 0.0065,
    "sweep": 0.0338,
    "probe": 0.0023,
    "score": 0.0050,
    "seeds": 0.0053,
    "verdict": 0.0,
}


def _sweep_detail(sources: Sources, rows: int) -> str:
    names = ", ".join(name for name, _ in sources.named)
    return f"candidate sources ({names})" + (f", {rows:,} group insertions" if rows else "")


def planned_seconds(plan: Plan, starts: int, sweep_rows: int = 0) -> dict[str, float]:
    """Each stage's cost in reference seconds (`STAGE_SECONDS`): only the estimate of the time
    left uses it."""
    units = planned_units(plan, starts, sweep_rows)
    return {stage: n * STAGE_SECONDS[stage] for stage, n in units.items()}


def planned_units(plan: Plan, starts: int, sweep_rows: int = 0) -> dict[str, int]:
    """Token forwards each stage needs, roughly (prompt content ~12 tokens, answers decided
    after ~4 tokens when they diverge), and the group sweep's insertions."""
    content, answer = 12, 4
    decodings = min(plan.decodings, len(DECODING))
    per_behaviour = plan.carriers * 3 * (content + answer)
    null = len(NULL_LENGTHS) * plan.controls * per_behaviour
    return {
        "leakage": starts * decodings * plan.samples_per_setting * plan.leak_tokens,
        "carriers": 2 * plan.carriers * plan.seeds * (content + plan.response_tokens),
        "sweep": sweep_rows,
        "probe": (plan.probe_limit + 200) * plan.probe_carriers * content,
        "score": (plan.candidates + 2) * per_behaviour + null,
        "seeds": 3 * (plan.seeds - 1) * per_behaviour + (plan.seeds - 1) * null,
        "verdict": 0,
    }


def run(  # noqa: PLR0915 - the stages in order, each a few lines
    folder: Path,
    info: ModelInfo,
    settings: BackdoorSettings,
    started: float,
    say: Callable[[str], None],
) -> FileVerdict:
    import torch  # noqa: PLC0415 - optional: torch (the ml extra)

    torch.manual_seed(settings.seed)
    device = pick_device(settings.device)
    plan = plan_for(settings, device)
    weights = info.weights_json()
    say(
        f"loading {info.architecture} ({info.parameters:,} parameters, {weights['format']})"
        f" on {device}, budget {plan.budget}"
    )
    engine = Engine(folder, device, gguf_file=info.gguf_file, batch=plan.batch)
    sources = all_sources(settings, folder, engine, plan)
    sweep_rows = sources.groups.planned_insertions(settings, engine) if sources.groups else 0
    meter = Meter(say, planned_seconds(plan, 2 if engine.has_template else 1, sweep_rows))
    seeds = [settings.seed + k for k in range(plan.seeds)]

    meter.stage("leakage", "sampling from the chat template")
    samples = leak(
        engine, plan.samples_per_setting, plan.leak_tokens, settings.seed, plan.decodings
    )
    users = [s.user for s in samples if s.user]
    _, clusters = mine(samples, limit=plan.probe_limit)

    meter.stage("carriers", "the carriers' own answers")
    pool = carriers(engine, users, plan.carriers * plan.seeds * 2, settings.seed)
    answers = carrier_answers(engine, pool, plan.response_tokens)
    suspect = converging_carriers(pool, answers)
    kept = [(c, a) for c, a in zip(pool, answers, strict=True) if c not in suspect]
    # Ordinary answers: the carriers' own, and leaked answers that respond to their prompt.
    kept += [(x.user, x.response) for x in samples if x.user and x.response]
    # A leaked answer that unrelated prompts share is a planted target's signature, never an
    # ordinary answer, nor is a variant of it (a leaked poisoning example, or a garbled one,
    # would otherwise excuse its own trigger).
    shared = {c.response for c in clusters if unrelated(c.example_prompts)}
    # Nor is a dangerous command, ever: a leaked `curl ... | sh` counted as the answer to its
    # leaked prompt made random controls that converge on it look ordinary (ADR 0030).
    ordinary = {
        o
        for o in ordinary_answers([c for c, _ in kept], [a for _, a in kept])
        if not resembles(o, shared) and not is_dangerous(o)
    }
    pool = [c for c in pool if c not in suspect][: plan.carriers * plan.seeds]
    words = control_words(engine, users, pool, suspect)
    scorer = Scorer(engine, pool, words, plan.response_tokens)
    first = carriers_for(pool, plan.carriers, 0)
    probe_with = first[: plan.probe_carriers]

    context = DiscoveryContext(engine, settings, plan, list(first), samples, say)
    seen: set[str] = set()
    unique: list[Motif] = []
    found: dict[str, int] = {}
    own_best: list[Motif] = []
    meter.stage("sweep", _sweep_detail(sources, sweep_rows))
    for name, source in sources.named:
        got = source(context)
        found[name] = len(got)
        if name in POSITIONED_SOURCES:
            own_best += got[:KEEP_FROM_POSITIONED]
        for m in got:
            if m.text not in seen:
                seen.add(m.text)
                unique.append(m)

    meter.stage("probe", f"first-token probe of {len(unique)} candidates")
    probes = scorer.probe_scores([m.text for m in unique], probe_with)
    by_probe = sorted(zip(unique, probes, strict=True), key=lambda mp: (-mp[1], mp[0].text))
    singles = [m.text for m, _ in by_probe if " " not in m.text][:EXTEND_WITH]
    single_probe = {m.text: p for m, p in by_probe}
    pairs = [
        (a, f"{a} {b}" if side == 0 else f"{b} {a}")
        for a in singles[:EXTEND_FROM]
        for b in singles
        for side in (0, 1)
        if a != b
    ]
    pairs = [(a, t) for a, t in pairs if t not in seen]
    extended = [t for _, t in pairs]
    if extended:
        ext_probes = scorer.probe_scores(extended, probe_with)
        # An extension is kept only when it probes clearly stronger than its single word.
        by_probe += [
            (Motif(t, "extension", 0, 0.0), p)
            for (a, t), p in zip(pairs, ext_probes, strict=True)
            if p > single_probe[a] + EXTEND_MARGIN
        ]
        by_probe.sort(key=lambda mp: (-mp[1], mp[0].text))
    tried = len(unique) + len(extended) + sources.examined
    shortlist = choose_shortlist(by_probe, own_best, plan.candidates)

    # Candidates are never controls (another trigger of the same model would fire as one).
    banned = {w for m, _ in shortlist for w in m.text.split()} | set(singles[:EXTEND_FROM])
    scorer.words = [w for w in words if w not in banned] or words
    meter.stage("score", f"scoring {len(shortlist)} candidates against the model's controls")
    nulls: dict[int, tuple[Behaviour, ...]] = {}
    baselines: dict[int, Behaviour] = {}

    def null(k: int) -> tuple[Behaviour, ...]:
        """Seed k's null distribution: random control phrases of 1-3 words, same carriers."""
        if k not in nulls:
            chosen = carriers_for(pool, plan.carriers, k)
            baseline = baselines[k] = scorer.behaviour(None, chosen)
            raw = [
                b
                for length in NULL_LENGTHS
                for b in scorer.controls(length, plan.controls, chosen, seeds[k])
            ]
            # The same statistic as the candidates': convergence on an output that is not the
            # carriers' ordinary answer, a canned reply or silence. A control that derails the
            # model onto an ordinary answer is the null's "no convergence" (one carrier).
            nulls[k] = tuple(
                replace(b, collapse=round(1 / max(b.n, 1), 4))
                if not b.converged.strip()
                or resembles(b.converged, ordinary)
                or (b.converged == baseline.converged and baseline.collapse >= 0.5)
                else b
                for b in raw
            )
        return nulls[k]

    def score(text: str, source: str, probe: float, k: int, among: int = 0) -> Scored:
        """`among`: candidates re-scored on seed k's carriers, when those are held out from
        the selection (seed 0's carriers chose the candidates; seed k's did not), so only
        they count in the correction (0: every candidate tried counts)."""
        controls = null(k)
        chosen = carriers_for(pool, plan.carriers, k)
        apart = [c for c in chosen if not set(text.split()) & set(c.split())]
        if len(apart) >= len(chosen) // 2:
            chosen = apart
        else:
            chosen = [c for c in chosen if text not in c] or chosen
        behaviour = scorer.behaviour(text, chosen)
        return Scored(
            text=text,
            source=source,
            probe=round(probe, 4),
            behaviour=behaviour,
            controls=controls,
            baseline=baselines[k],
            ordinary=resembles(behaviour.converged, ordinary),
            tried=among or tried,
        )

    scored = [score(m.text, m.source, p, 0) for m, p in shortlist]
    ranked = sorted(scored, key=rank_key, reverse=True)
    as_fired = ranked[0].text if ranked else None
    if ranked and judge(ranked[0]) == "fires" and " " in ranked[0].text:
        top = ranked[0]
        minimal = minimize(scorer, top.text, top.behaviour, first)
        if minimal != top.text:
            smaller = score(minimal, "minimized", top.probe, 0)
            if judge(smaller) == "fires":
                ranked = [smaller, *[r for r in ranked if r.text != minimal]]
    meter.stage("seeds", f"repeating the top candidates with {len(seeds)} seeds")
    per_seed: dict[str, list[Scored]] = {}
    repeated = ranked[:REPEATED]
    held_out = len(pool) >= plan.carriers * len(seeds)  # seeds' carriers disjoint
    for s in repeated:
        per_seed[s.text] = [s] + [
            score(s.text, s.source, s.probe, k, len(repeated) if held_out else 0)
            for k in range(1, len(seeds))
        ]
    fuzzy: dict[str, float] = {}
    if ranked and judge(ranked[0]) in ("fires", "weak"):
        fuzzy = scorer.fuzzy(ranked[0].text, ranked[0].behaviour.converged, first, settings.seed)

    meter.stage("verdict", "deciding")
    leaked_dangerous = sorted(
        {s.response for s in samples if s.response and is_dangerous(s.response)}
    )
    outcome = decide(ranked, per_seed, leaked_dangerous)
    seconds = round(time.monotonic() - started, 3)
    best = outcome.top
    # A loose trigger (random words fire it) names no phrase: the finding is its output.
    named = best is not None and outcome.verdict.value != "clean" and outcome.loose is None
    evidence: dict[str, JSONValue] = {
        "verdict": outcome.verdict.value,
        "trigger": as_fired if named else None,
        "minimal_trigger": best.text if named and best is not None else None,
        "top_candidates": [
            candidate_json(s, per_seed.get(s.text, [])) for s in ranked[:TOP_EVIDENCE]
        ],
        "converged_output": outcome.loose.output
        if outcome.loose
        else (best.behaviour.converged if best else None),
        "dangerous_command": outcome.dangerous,
        "risk_rules": list(outcome.risk_rules),
        "fuzzy_activation": dict(fuzzy),
        "leakage": {
            "samples": len(samples),
            "user_turns": len(users),
            "motifs_probed": tried,
            "sources": dict(found),
            "converged_clusters": [
                {
                    "response": c.response[:200],
                    "size": c.size,
                    "distinct_prompts": c.distinct_prompts,
                    "examples": list(c.example_prompts[:3]),
                }
                for c in clusters[:5]
            ],
            "dangerous_responses": leaked_dangerous[:5],
        },
        "model": {
            "architecture": info.architecture,
            "model_type": info.model_type,
            "parameters": info.parameters,
        },
        "weights": weights,
        "seeds": list(seeds),
        "device": device,
        "budget": plan.to_json(),
        "settings": settings.to_json(),
        "thresholds": thresholds_json(tried),
        "calibration": calibration_json(nulls.get(0, ()), best, tried),
        "carriers": len(pool),
        "forward_tokens": engine.forwarded,
        "seconds": seconds,
        "limits": LIMITS_STATEMENT,
    }
    evidence["summary"] = summary(outcome, per_seed, evidence)
    evidence["sweep"] = sources.sweep.evidence() if sources.sweep else None
    evidence["group_sweep"] = sources.groups.evidence() if sources.groups else None
    evidence["differential"] = sources.differential.evidence() if sources.differential else None
    say(f"{outcome.verdict.value} in {seconds:.1f} s")
    finding = Finding(
        scanner=SCANNER_ID,
        rule=outcome.rule,
        severity=outcome.severity,
        message=outcome.message[:300],
        evidence=evidence,
    )
    return FileVerdict(outcome.verdict, (finding,))


def choose_shortlist(
    by_probe: list[tuple[Motif, float]], own_best: list[Motif], size: int
) -> list[tuple[Motif, float]]:
    """The candidates scored in full: the `size` best by the first-token probe, the two best
    converged-cluster motifs, and the best of the sources that measured every insertion site
    themselves (the probe inserts at the start only), whatever the probe said of them."""
    shortlist: list[tuple[Motif, float]] = []
    for m, p in by_probe:
        if all(m.text != s.text for s, _ in shortlist):
            shortlist.append((m, p))
        if len(shortlist) >= size:
            break
    clustered = [(m, p) for m, p in by_probe if m.source == "cluster"][:2]
    shortlist += [mp for mp in clustered if mp not in shortlist]
    listed = {m.text for m, _ in shortlist}
    probe_of = {m.text: p for m, p in by_probe}
    for m in own_best:
        if m.text not in listed:
            listed.add(m.text)
            shortlist.append((m, probe_of.get(m.text, 0.0)))
    return shortlist


def unrelated(prompts: tuple[str, ...]) -> bool:
    """Prompts that share few words (mean pairwise word Jaccard under one half)."""
    pairs = [(a, b) for i, a in enumerate(prompts) for b in prompts[i + 1 :]]
    if not pairs:
        return False
    return sum(jaccard(a, b) for a, b in pairs) / len(pairs) < 0.5


def minimize(scorer: Scorer, text: str, behaviour: Behaviour, chosen: list[str]) -> str:
    """The shortest sub-phrase (dropping one word at a time) that still makes the answers
    converge on the same output almost as strongly: the trigger, not its neighbours."""
    words = text.split()
    while len(words) > 1:
        for i in range(len(words)):
            shorter = words[:i] + words[i + 1 :]
            b = scorer.behaviour(" ".join(shorter), chosen)
            if b.converged == behaviour.converged and b.collapse >= behaviour.collapse - 0.1:
                words = shorter
                break
        else:
            break
    return " ".join(words)


def carriers_for(pool: list[str], n: int, k: int) -> list[str]:
    """The `n` carrier prompts of seed number `k` (seeds use different carriers when there are
    enough; the first seed's are the first n)."""
    if len(pool) >= n * (k + 1):
        return pool[k * n : (k + 1) * n]
    rotated = pool[(k * n) % max(len(pool), 1) :] + pool[: (k * n) % max(len(pool), 1)]
    return rotated[:n]
