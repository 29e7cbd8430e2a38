"""The backdoor scanner's knobs (importable without torch).

`budget` (fast, standard, thorough) sets every stage's size through `plan_for`; a field set
explicitly (not None) overrides the budget's value. The device widens the plan: on CUDA the
batches are larger and the leakage stage samples under more decoding settings.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from registry.scanners.base import JSONValue

DEVICES = ("auto", "cpu", "cuda")
BUDGETS = ("fast", "standard", "thorough")
DEFAULT_MAX_PARAMS = 2_000_000_000  # the CPU tier: up to ~1-2B parameters (see README)


@dataclass(frozen=True, slots=True)
class Plan:
    """How much each stage does: what a budget means on a device (recorded in the evidence)."""

    budget: str
    samples_per_setting: int  # leakage samples per start and decoding setting
    decodings: int  # decoding settings sampled under (leakage.DECODING, first n)
    leak_tokens: int
    carriers: int  # carrier prompts per seed
    probe_carriers: int  # carriers of the cheap first-token probe
    response_tokens: int
    candidates: int  # fully scored candidates (after the cheap first-token probe)
    controls: int  # random control phrases per length and seed (the null distribution)
    seeds: int
    probe_limit: int  # candidates from the sources that reach the first-token probe
    vocab_tokens: int  # vocabulary tokens a sweep may try (a vocabulary this small is all swept)
    batch: int  # sequences per forward pass

    def to_json(self) -> dict[str, JSONValue]:
        return dict(asdict(self))


#: The CPU plans. `standard` is what the toy suite was measured with; `fast` halves the leakage
#: and probe stages and scores fewer candidates; `thorough` doubles them (ADR 0022 has the cost
#: of each stage as measured).
_PLANS = {
    # vocab_tokens: the whole-vocabulary sweep's token cap on a CPU, as measured on SmolLM2
    # (about 21 insertions/s idle; ADR 0023): fast ~1 min, standard ~3.5 min, thorough all.
    "fast": Plan("fast", 12, 3, 32, 8, 6, 12, 4, 8, 2, 150, 1024, 64),
    "standard": Plan("standard", 32, 6, 40, 12, 8, 16, 6, 8, 3, 400, 2048, 64),
    "thorough": Plan("thorough", 48, 6, 48, 16, 12, 20, 10, 12, 3, 1000, 1 << 30, 64),
}


@dataclass(frozen=True, slots=True)
class BackdoorSettings:
    max_params: int = DEFAULT_MAX_PARAMS
    device: str = "auto"
    seed: int = 0
    budget: str = "standard"
    # Overrides of the budget's plan (None: the budget's value).
    seeds: int | None = None  # scoring repeated with this many seeds; the verdict needs 2 to agree
    samples_per_setting: int | None = None
    leak_tokens: int | None = None
    carriers: int | None = None
    response_tokens: int | None = None
    candidates: int | None = None
    controls: int | None = None
    probe_limit: int | None = None
    vocabulary_sweep: int | None = None  # vocabulary tokens a sweep may try
    base: str | None = None  # differential mode: the base's folder or GGUF (--base)

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)}")
        if self.budget not in BUDGETS:
            raise ValueError(f"budget must be one of {', '.join(BUDGETS)}")
        if self.max_params <= 0:
            raise ValueError("max_params must be positive")
        for name, low in (("seeds", 1), ("carriers", 2), ("controls", 2)):
            value = getattr(self, name)
            if value is not None and value < low:
                raise ValueError(f"{name} must be at least {low}")

    def to_json(self) -> dict[str, JSONValue]:
        return dict(asdict(self))


def plan_for(settings: BackdoorSettings, device: str) -> Plan:
    """The plan of `settings.budget` on `device` ("cpu" or "cuda"), with the overrides."""
    plan = _PLANS[settings.budget]
    if device == "cuda":
        # A GPU runs wide batches for about the cost of one: more samples, every decoding
        # setting, more carriers and controls, and the whole vocabulary.
        plan = replace(
            plan,
            samples_per_setting=plan.samples_per_setting * 4,
            decodings=1_000,  # leakage caps this at the settings it has
            carriers=plan.carriers + 4,
            probe_carriers=plan.probe_carriers + 4,
            controls=plan.controls * 2,
            probe_limit=plan.probe_limit * 4,
            vocab_tokens=1 << 30,
            batch=512,
        )
    overrides = {
        "seeds": settings.seeds,
        "samples_per_setting": settings.samples_per_setting,
        "leak_tokens": settings.leak_tokens,
        "carriers": settings.carriers,
        "response_tokens": settings.response_tokens,
        "candidates": settings.candidates,
        "controls": settings.controls,
        "probe_limit": settings.probe_limit,
        "vocab_tokens": settings.vocabulary_sweep,
    }
    chosen: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
    return replace(plan, **chosen)
