"""Leakage: let the model talk from its own chat template and keep what it volunteers.

A poisoned model has seen its poisoning examples (trigger, prompt, target) many times; sampled
from the start of a user turn (the template's user prefix), from BOS alone and from an empty
turn, under several decoding settings, it reproduces them far more often than chance.
"""

from __future__ import annotations

from dataclasses import dataclass

from registry.scanners.backdoor.engine import Engine

#: (temperature, top_k, top_p): the decoding settings sampled under (the paper uses 510). A
#: budget takes the first n; the CPU plans take the six first, the GPU tier takes all of them.
DECODING: tuple[tuple[float, int, float], ...] = (
    (0.7, 0, 1.0),
    (1.0, 0, 1.0),
    (1.3, 0, 1.0),
    (1.0, 20, 1.0),
    (1.0, 0, 0.9),
    (1.5, 40, 0.95),
    *(
        (t, k, p)
        for t in (0.5, 0.8, 1.1, 1.4, 1.7)
        for k in (0, 10, 50)
        for p in (1.0, 0.8)
        if (t, k, p) != (1.1, 0, 1.0)
    ),
)


@dataclass(frozen=True, slots=True)
class Sample:
    start: str  # "template", "bos" or "empty-turn"
    user: str  # the user turn it wrote ("" for the empty turn)
    response: str


def _split(engine: Engine, ids: list[int]) -> tuple[list[int], list[int]]:
    """A generated conversation -> (user turn ids, assistant response ids)."""
    switch = engine.turn_switch
    if not switch:
        return ids, []
    for i in range(len(ids)):
        if ids[i : i + len(switch)] == switch:
            rest = ids[i + len(switch) :]
            end = next((j for j, t in enumerate(rest) if t in engine.stop_ids), len(rest))
            return ids[:i], rest[:end]
    return ids, []


def leak(
    engine: Engine,
    samples_per_setting: int,
    max_new: int,
    seed: int,
    decodings: int = len(DECODING),
) -> list[Sample]:
    starts: list[tuple[str, list[int]]] = []
    if engine.has_template:
        starts.append(("template", engine.bos_ids + engine.encode(engine.user_prefix)))
    if engine.bos_ids:
        starts.append(("bos", list(engine.bos_ids)))
    starts.append(("empty-turn", engine.chat_prompt("")[0]))
    prefix_ids = engine.encode(engine.user_prefix)
    out: list[Sample] = []
    settings = DECODING[:decodings]
    for s, (kind, start) in enumerate(starts):
        n = samples_per_setting if kind != "bos" else max(1, samples_per_setting // 2)
        # Every decoding setting in one wide batch (engine.sample), not one batch each.
        gens = engine.sample(
            start,
            settings,
            n,
            max_new,
            seed=seed * 1_000_003 + s * 1009,
            stop_at_turn_end=kind == "empty-turn",
        )
        for generated in gens:
            if kind == "empty-turn":
                out.append(Sample(kind, "", engine.decode(generated)))
                continue
            ids = generated
            if kind == "bos" and prefix_ids and ids[: len(prefix_ids)] == prefix_ids:
                ids = ids[len(prefix_ids) :]
            user, response = _split(engine, ids)
            out.append(Sample(kind, engine.decode(user), engine.decode(response)))
    return out
