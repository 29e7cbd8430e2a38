"""The backdoor scanner's knobs (importable without torch)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from registry.scanners.base import JSONValue

DEVICES = ("auto", "cpu", "cuda")
DEFAULT_MAX_PARAMS = 2_000_000_000  # the CPU tier: up to ~1-2B parameters (see README)


@dataclass(frozen=True, slots=True)
class BackdoorSettings:
    max_params: int = DEFAULT_MAX_PARAMS
    device: str = "auto"
    seed: int = 0
    seeds: int = 3  # scoring repeated with this many seeds; the verdict needs 2 to agree
    samples_per_setting: int = 32  # leakage samples per start and decoding setting
    leak_tokens: int = 40
    carriers: int = 12
    response_tokens: int = 16
    candidates: int = 6  # fully scored candidates (after the cheap first-token probe)
    controls: int = 6  # random same-length control phrases per candidate length and seed
    probe_limit: int = 400
    vocabulary_sweep: int = 4096  # probe every token when the vocabulary is at most this
    base: str | None = None  # differential mode: the base's folder or GGUF (--base)

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)}")
        if self.max_params <= 0 or self.seeds < 1 or self.carriers < 2 or self.controls < 2:
            raise ValueError("max_params, seeds, carriers and controls must be positive")

    def to_json(self) -> dict[str, JSONValue]:
        return dict(asdict(self))
