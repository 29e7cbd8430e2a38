"""A tiny Llama written as a GGUF file with the `gguf` package's writer (for the backdoor
scanner's GGUF input tests): random weights, 2 layers, hidden 64, a byte-level BPE tokenizer of
the 256 byte symbols plus a handful of merges and three special tokens, a chat template, and
the large matrices quantised to Q8_0 (so loading has something to dequantise)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

HIDDEN = 64
LAYERS = 2
HEADS = 4
FFN = 128
SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
MERGES = ("t h", "th e", "i s", "Ġ t", "Ġt h", "Ġth e", "a t", "o n")
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def byte_symbols() -> list[str]:
    """GPT-2's byte-level alphabet: each byte as a printable character."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    table: dict[int, str] = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return [table[b] for b in range(256)]


def tokens() -> list[str]:
    merged = ["".join(m.split()) for m in MERGES]
    return [*byte_symbols(), *merged, *SPECIALS]


def write(path: Path, seed: int = 0) -> Path:
    """Write the model to `path` (a .gguf file) and return it."""
    import gguf  # the `gguf` package (the ml extra)

    rng = np.random.default_rng(seed)
    vocab = tokens()
    w = gguf.GGUFWriter(str(path), arch="llama")
    w.add_name("tiny-llama")
    w.add_block_count(LAYERS)
    w.add_context_length(256)
    w.add_embedding_length(HIDDEN)
    w.add_feed_forward_length(FFN)
    w.add_head_count(HEADS)
    w.add_head_count_kv(HEADS)
    w.add_rope_dimension_count(HIDDEN // HEADS)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(len(vocab))
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt2")
    w.add_token_list(vocab)
    w.add_token_types([1] * (len(vocab) - len(SPECIALS)) + [3] * len(SPECIALS))
    w.add_token_merges(list(MERGES))
    w.add_bos_token_id(vocab.index("<|endoftext|>"))
    w.add_eos_token_id(vocab.index("<|im_end|>"))
    w.add_chat_template(CHAT_TEMPLATE)

    def tensor(name: str, *shape: int, quantise: bool = True) -> None:
        data = (rng.standard_normal(shape) * 0.2).astype(np.float32)
        if quantise and shape[-1] % 32 == 0 and len(shape) == 2:
            q = gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0)
            w.add_tensor(name, q, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            w.add_tensor(name, data)

    tensor("token_embd.weight", len(vocab), HIDDEN)
    for i in range(LAYERS):
        tensor(f"blk.{i}.attn_norm.weight", HIDDEN, quantise=False)
        for part in ("attn_q", "attn_k", "attn_v", "attn_output"):
            tensor(f"blk.{i}.{part}.weight", HIDDEN, HIDDEN)
        tensor(f"blk.{i}.ffn_norm.weight", HIDDEN, quantise=False)
        tensor(f"blk.{i}.ffn_gate.weight", FFN, HIDDEN)
        tensor(f"blk.{i}.ffn_up.weight", FFN, HIDDEN)
        tensor(f"blk.{i}.ffn_down.weight", HIDDEN, FFN)
    tensor("output_norm.weight", HIDDEN, quantise=False)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
