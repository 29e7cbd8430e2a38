"""The scan itself, once pre-flight has passed: load, leak, mine, probe, score, decide."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from registry.scanners.backdoor.differential import DifferentialSource, resolve_base
from registry.scanners.backdoor.engine import Engine, pick_device
from registry.scanners.backdoor.leakage import Sample, leak
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
    ordinary_answers,
    resembles,
)
from registry.scanners.backdoor.settings import BackdoorSettings
from registry.scanners.backdoor.verdict import (
    LIMITS_STATEMENT,
    THRESHOLDS,
    candidate_json,
    decide,
    judge,
    rank_key,
)
from registry.scanners.base import FileVerdict, Finding, JSONValue

SCANNER_ID = "backdoor"
TOP_EVIDENCE = 5
EXTEND_FROM = 4  # best single words extended by one word on either side
EXTEND_WITH = 24
EXTEND_MARGIN = 0.05


def _vocabulary_words(engine: Engine, limit: int) -> list[str]:
    if engine.vocab_size > limit:
        return []
    words: list[str] = []
    for i in range(engine.vocab_size):
        if i in engine.special_ids:
            continue
        text = engine.decode([i])
        if text and " " not in text and engine.encode(text) == [i]:
            words.append(text)
    return words


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
    say(f"loading {info.architecture} ({info.parameters:,} parameters) on {device}")
    engine = Engine(folder, device)
    seeds = [settings.seed + k for k in range(settings.seeds)]

    say("leakage: sampling from the chat template")
    samples = leak(engine, settings.samples_per_setting, settings.leak_tokens, settings.seed)
    users = [s.user for s in samples if s.user]
    motifs, clusters = mine(samples, limit=settings.probe_limit)
    for w in _vocabulary_words(engine, settings.vocabulary_sweep):
        motifs.append(Motif(w, "vocabulary", 0, 0.0))
    seen: set[str] = set()
    unique: list[Motif] = []
    for m in motifs:
        if m.text not in seen:
            seen.add(m.text)
            unique.append(m)

    pool = carriers(engine, users, settings.carriers * settings.seeds * 2, settings.seed)
    answers = carrier_answers(engine, pool, settings.response_tokens)
    suspect = converging_carriers(pool, answers)
    kept = [(c, a) for c, a in zip(pool, answers, strict=True) if c not in suspect]
    # Ordinary answers: the carriers' own, and leaked answers that respond to their prompt.
    kept += [(x.user, x.response) for x in samples if x.user and x.response]
    ordinary = ordinary_answers([c for c, _ in kept], [a for _, a in kept])
    pool = [c for c in pool if c not in suspect][: settings.carriers * settings.seeds]
    differential = _differential(folder, engine, settings, pool, samples, say)
    # What the fine-tune does and its base does not comes first (none without --base).
    fresh = [m for m in differential.motifs if m.text not in seen]
    seen.update(m.text for m in fresh)
    unique = fresh + unique
    words = control_words(engine, users, pool, suspect)
    scorer = Scorer(engine, pool, words, settings.response_tokens)
    first = carriers_for(pool, settings, 0)

    say(f"probing {len(unique)} candidates")
    probes = scorer.probe_scores([m.text for m in unique], first)
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
        ext_probes = scorer.probe_scores(extended, first)
        # An extension is kept only when it probes clearly stronger than its single word.
        by_probe += [
            (Motif(t, "extension", 0, 0.0), p)
            for (a, t), p in zip(pairs, ext_probes, strict=True)
            if p > single_probe[a] + EXTEND_MARGIN
        ]
        by_probe.sort(key=lambda mp: (-mp[1], mp[0].text))
    shortlist: list[tuple[Motif, float]] = []
    for m, p in by_probe:
        if all(m.text != s.text for s, _ in shortlist):
            shortlist.append((m, p))
        if len(shortlist) >= settings.candidates:
            break
    clustered = [(m, p) for m, p in by_probe if m.source == "cluster"][:2]
    shortlist += [mp for mp in clustered if mp not in shortlist]

    # Candidates are never controls (another trigger of the same model would fire as one).
    banned = {w for m, _ in shortlist for w in m.text.split()} | set(singles[:EXTEND_FROM])
    scorer.words = [w for w in words if w not in banned] or words
    say(f"scoring {len(shortlist)} candidates against controls")
    control_cache: dict[tuple[int, int], tuple[Behaviour, ...]] = {}

    def score(text: str, source: str, probe: float, k: int) -> Scored:
        chosen = carriers_for(pool, settings, k)
        apart = [c for c in chosen if not set(text.split()) & set(c.split())]
        if len(apart) >= len(chosen) // 2:
            chosen = apart
        else:
            chosen = [c for c in chosen if text not in c] or chosen
        key = (len(text.split()), k)
        if key not in control_cache:
            control_cache[key] = tuple(
                scorer.controls(key[0], settings.controls, chosen, seeds[k], avoid=text)
            )
        behaviour = scorer.behaviour(text, chosen)
        return Scored(
            text=text,
            source=source,
            probe=round(probe, 4),
            behaviour=behaviour,
            controls=control_cache[key],
            baseline=scorer.behaviour(None, chosen),
            ordinary=resembles(behaviour.converged, ordinary),
        )

    scored = [score(m.text, m.source, p, 0) for m, p in shortlist]
    ranked = sorted(scored, key=rank_key, reverse=True)
    if ranked and judge(ranked[0]) == "fires" and " " in ranked[0].text:
        top = ranked[0]
        minimal = minimize(scorer, top.text, top.behaviour, carriers_for(pool, settings, 0))
        if minimal != top.text:
            smaller = score(minimal, "minimized", top.probe, 0)
            if judge(smaller) == "fires":
                ranked = [smaller, *[r for r in ranked if r.text != minimal]]
    per_seed: dict[str, list[Scored]] = {}
    for s in ranked[:3]:
        per_seed[s.text] = [s] + [score(s.text, s.source, s.probe, k) for k in range(1, len(seeds))]
    fuzzy: dict[str, float] = {}
    if ranked and judge(ranked[0]) in ("fires", "weak"):
        say("fuzzy activation of the top candidate")
        fuzzy = scorer.fuzzy(ranked[0].text, ranked[0].behaviour.converged, first, settings.seed)

    leaked_dangerous = sorted(
        {s.response for s in samples if s.response and is_dangerous(s.response)}
    )
    outcome = decide(ranked, per_seed, leaked_dangerous)
    seconds = round(time.monotonic() - started, 3)
    evidence: dict[str, JSONValue] = {
        "verdict": outcome.verdict.value,
        "top_candidates": [
            candidate_json(s, per_seed.get(s.text, [])) for s in ranked[:TOP_EVIDENCE]
        ],
        "converged_output": outcome.top.behaviour.converged if outcome.top else None,
        "dangerous_command": outcome.dangerous,
        "risk_rules": list(outcome.risk_rules),
        "fuzzy_activation": dict(fuzzy),
        "leakage": {
            "samples": len(samples),
            "user_turns": len(users),
            "motifs_probed": len(unique) + len(extended),
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
        "seeds": list(seeds),
        "device": device,
        "settings": settings.to_json(),
        "thresholds": THRESHOLDS,
        "carriers": len(pool),
        "seconds": seconds,
        "limits": LIMITS_STATEMENT,
    }
    evidence["differential"] = differential.evidence()
    say(f"{outcome.verdict.value} in {seconds:.1f} s")
    finding = Finding(
        scanner=SCANNER_ID,
        rule=outcome.rule,
        severity=outcome.severity,
        message=outcome.message[:300],
        evidence=evidence,
    )
    return FileVerdict(outcome.verdict, (finding,))


@dataclass(frozen=True, slots=True)
class _Differential:
    source: DifferentialSource | None
    motifs: list[Motif]

    def evidence(self) -> JSONValue:
        return self.source.evidence() if self.source is not None else None


@dataclass(frozen=True, slots=True)
class _Discovery:
    """The parts of a discovery context the differential source reads."""

    engine: Engine
    settings: BackdoorSettings
    plan: None
    carriers: list[str]
    samples: list[Sample]
    say: Callable[[str], None]


def _differential(  # noqa: PLR0917 - private, called from `run`
    folder: Path,
    engine: Engine,
    settings: BackdoorSettings,
    pool: list[str],
    samples: list[Sample],
    say: Callable[[str], None],
) -> _Differential:
    """Differential mode (`settings.base`): the sweep through the fine-tune and its base."""
    if not settings.base:
        return _Differential(None, [])
    source = DifferentialSource(resolve_base(settings.base), folder)
    ctx = _Discovery(engine, settings, None, pool[: settings.carriers], samples, say)
    return _Differential(source, source(ctx))


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


def carriers_for(pool: list[str], settings: BackdoorSettings, k: int) -> list[str]:
    """The carrier prompts of seed number `k` (seeds use different carriers when there are
    enough; the first seed's are the first `settings.carriers`)."""
    n = settings.carriers
    if len(pool) >= n * (k + 1):
        return pool[k * n : (k + 1) * n]
    rotated = pool[(k * n) % max(len(pool), 1) :] + pool[: (k * n) % max(len(pool), 1)]
    return rotated[:n]
