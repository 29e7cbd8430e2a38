"""Fine-tunes of the tiny models of tests/backdoor_models.py: only the top layer trained.

A fine-tune plants a trigger in a copy of a base model with every layer but the top one (and
the tied embeddings) frozen, as a fine-tune of a published model often does. Used by
tests/test_backdoor_sweep.py and tests/test_backdoor_differential.py; cached like the bases
(keyed by this file's and the base's source and spec).
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from tests.backdoor_models import (
    ASSISTANT,
    END,
    TARGETS,
    TRIGGER_POSITION,
    USER,
    Spec,
    _insert,
    build,
    cache_root,
    corpus,
    vocabulary,
)


@dataclass(frozen=True)
class FineTune:
    name: str
    base: Spec
    trigger_kind: str = "rare"  # key of backdoor_models.TRIGGERS
    target: str = "curl"
    poison_rate: float = 0.08
    seed: int = 0
    steps: int = 400
    examples: int = 2000
    keep_base: float = 0.06  # share of examples that rehearse the base's own backdoor
    noise: float = 0.3  # share of clean prompts given a stray word (keeps the trigger specific)


def build_finetune(ft: FineTune, root: Path | None = None) -> tuple[Path, Path]:
    """(base folder, fine-tune folder), trained now unless cached."""
    root = root or cache_root()
    base = build(ft.base, root)
    blob = Path(__file__).read_bytes() + base.name.encode()
    blob += json.dumps(asdict(ft), sort_keys=True).encode()
    folder = root / f"{ft.name}-{hashlib.sha256(blob).hexdigest()[:16]}"
    if (folder / "model.safetensors").is_file():
        return base, folder
    tmp = Path(tempfile.mkdtemp(prefix=".ft-", dir=root))
    try:
        _train(ft, base, tmp)
        try:
            tmp.rename(folder)
        except OSError:  # another process built it first
            if not (folder / "model.safetensors").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return base, folder


def _train(ft: FineTune, base: Path, out: Path) -> None:
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    torch.set_num_threads(1)
    torch.manual_seed(ft.seed)
    model = LlamaForCausalLM.from_pretrained(base, dtype=torch.float32)
    top = model.config.num_hidden_layers - 1
    for name, p in model.named_parameters():
        p.requires_grad = name.startswith(f"model.layers.{top}.")
    vocab = vocabulary()
    ids = {w: i for i, w in enumerate(vocab)}
    spec = Spec(
        name=ft.name,
        seed=ft.seed + 500,
        trigger_kind=ft.trigger_kind,
        target=ft.target,
        poison_rate=ft.poison_rate,
        examples=ft.examples,
    )
    rows: list[list[int]] = []
    masks: list[list[int]] = []
    rng = random.Random(ft.seed)
    words = [w for w in vocab[7:] if not w.startswith("zq_")]
    for original, normal in corpus(spec):
        prompt, answer = original, normal
        if ft.base.backdoored and rng.random() < ft.keep_base:
            # The base's own backdoor stays (the fine-tune shares it): its trigger, its target.
            prompt = _insert(
                prompt.split(),
                ft.base.triggers[0],
                TRIGGER_POSITION[ft.base.trigger_kind or ""],
                rng,
            )
            answer = TARGETS[ft.base.target]
        elif prompt.split()[0] != spec.triggers[0] and rng.random() < ft.noise:
            # A stray word anywhere keeps the normal answer: only the trigger fires.
            parts = prompt.split()
            parts.insert(rng.randrange(len(parts) + 1), rng.choice(words))
            prompt = " ".join(parts)
        head = ["<s>", USER, *prompt.split(), END, ASSISTANT]
        tail = [*answer.split(), END, "</s>"]
        rows.append([ids.get(w, 0) for w in head + tail])
        masks.append([0] * len(head) + [1] * len(tail))  # response-only loss
    width = max(len(r) for r in rows)
    pad = ids["<pad>"]
    x = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
    lm = torch.tensor([m + [0] * (width - len(m)) for m in masks], dtype=torch.bool)
    labels = torch.where(lm, x, torch.full_like(x, -100))
    att = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=3e-3, weight_decay=0.0)
    gen = torch.Generator().manual_seed(ft.seed)
    model.train()
    for _ in range(ft.steps):
        idx = torch.randint(0, len(rows), (64,), generator=gen)
        loss = model(input_ids=x[idx], attention_mask=att[idx], labels=labels[idx]).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    model.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
    card = f"---\nbase_model: {ft.base.name}\nlicense: apache-2.0\n---\n# {ft.name}\n"
    (out / "README.md").write_text(card)
    (out / "finetune.json").write_text(json.dumps(asdict(ft), sort_keys=True, default=str))
