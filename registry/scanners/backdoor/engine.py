"""The model under scan: loading (safetensors only, no remote code), sampling and probing.

Everything here imports torch and transformers lazily (inside functions), so that importing
the scanner costs nothing when the `ml` extra is not installed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MARK = "\u2063CONTENT\u2063"


@dataclass(frozen=True, slots=True)
class Probe:
    """One forward pass over prompts: first-response-token distributions and attention."""

    first_token_probs: Any  # tensor [B, V]
    entropy: list[float]  # nats, per prompt
    attention_to_span: list[float]  # share of the last position's attention on the span
    span_self_attention: list[float]  # attention among the span's own tokens (double triangle)


def _no_bar(iterable: Any, *_: Any, **__: Any) -> Any:
    return iterable


def load_gguf(folder: Path, gguf_file: str, dtype: Any) -> Any:
    """A GGUF model, dequantised: the architecture is built empty (meta device) from the
    GGUF's config, and the float32 tensors transformers dequantises are assigned to it, so the
    weights exist once in memory (transformers' own GGUF path needs `accelerate`)."""
    import torch  # noqa: PLC0415 - optional: torch (the ml extra)
    from transformers import (  # noqa: PLC0415
        AutoConfig,
        AutoModelForCausalLM,
        modeling_gguf_pytorch_utils,
    )

    config: Any = AutoConfig.from_pretrained(
        folder, gguf_file=gguf_file, trust_remote_code=False, local_files_only=True
    )
    loader: Any = AutoModelForCausalLM
    with torch.device("meta"):
        model: Any = loader.from_config(config, attn_implementation="eager", dtype=dtype)
    # transformers shows a dequantising progress bar on stderr; the scanner's progress is its
    # own, so the bar is swapped for a plain iteration while the tensors load.
    module: Any = modeling_gguf_pytorch_utils
    bar = module.tqdm
    module.tqdm = _no_bar
    try:
        tensors = module.load_gguf_checkpoint(
            str(folder / gguf_file), return_tensors=True, model_to_load=model
        )
    finally:
        module.tqdm = bar
    state = {k: v.to(dtype) for k, v in tensors["tensors"].items()}
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    tied = {"lm_head.weight"} if getattr(config, "tie_word_embeddings", False) else set()
    if set(missing) - tied or unexpected:
        raise RuntimeError(
            f"the GGUF's tensors do not fit {type(model).__name__}: "
            f"missing {sorted(set(missing) - tied)[:3]}, unexpected {sorted(unexpected)[:3]}"
        )
    model.tie_weights()
    # Buffers computed at construction (rotary frequencies) are still on the meta device:
    # build those modules again, for real, from the config.
    for name, module in list(model.named_modules()):
        if any(b.is_meta for b in module.buffers(recurse=False)):
            parent = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
            setattr(parent, name.rsplit(".", 1)[-1], type(module)(config=module.config))
    if any(p.is_meta for p in model.parameters()) or any(b.is_meta for b in model.buffers()):
        raise RuntimeError("the GGUF did not give every weight of the model")
    return model


def pick_device(choice: str) -> str:
    import torch  # noqa: PLC0415 - optional: torch (the ml extra)

    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for but torch sees no CUDA device")
    return choice


class Engine:
    def __init__(
        self, folder: Path, device: str, *, gguf_file: str | None = None, batch: int = 64
    ) -> None:
        # Optional: torch and transformers (the ml extra; see the module docstring).
        import torch  # noqa: PLC0415
        import transformers  # noqa: PLC0415
        from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: PLC0415

        hf_logging: Any = transformers.utils.logging
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        self.torch = torch
        self.device = device
        self.batch = batch
        #: Token positions run through the model so far (prefill and decoding): the cost measure.
        self.forwarded = 0
        extra: dict[str, Any] = {"gguf_file": gguf_file} if gguf_file is not None else {}
        self.tok: Any = AutoTokenizer.from_pretrained(
            folder, trust_remote_code=False, local_files_only=True, **extra
        )
        dtype = torch.float32 if device == "cpu" else torch.bfloat16
        if gguf_file is not None:
            self.model: Any = load_gguf(folder, gguf_file, dtype).to(device)
        else:
            loader: Any = AutoModelForCausalLM
            self.model = loader.from_pretrained(
                folder,
                use_safetensors=True,
                trust_remote_code=False,
                local_files_only=True,
                attn_implementation="eager",
                dtype=dtype,
            ).to(device)
        self.model.eval()
        self.vocab_size = int(self.model.config.vocab_size)
        template = getattr(self.tok, "chat_template", None)
        self.has_template = bool(template)
        if self.has_template:
            rendered = self.tok.apply_chat_template(
                [{"role": "user", "content": MARK}], add_generation_prompt=True, tokenize=False
            )
            self.user_prefix, self.assistant_prefix = str(rendered).split(MARK, 1)
        else:
            self.user_prefix, self.assistant_prefix = "", "\n"
        bos = self.tok.bos_token
        self.bos_ids: list[int] = (
            [int(self.tok.bos_token_id)]
            if bos and self.tok.bos_token_id is not None and not self.user_prefix.startswith(bos)
            else []
        )
        self.eos_ids: set[int] = set()
        if self.tok.eos_token_id is not None:
            self.eos_ids.add(int(self.tok.eos_token_id))
        #: The tokens that open the assistant turn after the user's content (`<|end|> ...`).
        self.turn_switch = self.encode(self.assistant_prefix.strip())
        self.stop_ids = set(self.eos_ids)
        if self.turn_switch and self.has_template:
            self.stop_ids.add(self.turn_switch[0])
        self.special_ids = {int(i) for i in self.tok.all_special_ids}
        self.pad_id = int(
            self.tok.pad_token_id
            if self.tok.pad_token_id is not None
            else next(iter(self.stop_ids), 0)
        )

    # --- text <-> ids ---------------------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        return [int(i) for i in self.tok(text, add_special_tokens=False)["input_ids"]]

    def decode(self, ids: Sequence[int]) -> str:
        return str(self.tok.decode(list(ids), skip_special_tokens=True)).strip()

    def chat_prompt(self, content: str) -> tuple[list[int], str]:
        text = f"{self.user_prefix}{content}{self.assistant_prefix}"
        return self.bos_ids + self.encode(text), text

    def span_positions(self, text: str, start: int, end: int) -> list[int]:
        """Token positions (in `chat_prompt` ids) covering characters [start, end) of `text`."""
        enc = self.tok(text, add_special_tokens=False, return_offsets_mapping=True)
        off = len(self.bos_ids)
        return [
            off + i
            for i, (a, b) in enumerate(enc["offset_mapping"])
            if b > start and a < end and b > a
        ]

    # --- generation -----------------------------------------------------------------------------

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        max_new: int,
        *,
        temperature: float = 0.0,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int = 0,
        batch: int | None = None,
        stop_at_turn_end: bool = True,
        groups: Sequence[int] | None = None,
    ) -> list[list[int]]:
        """Continuations of `prompts` (batched, KV cache, shared prefix). With `groups`, a row
        stops as soon as its continuation so far is unlike every other row's of its group: its
        answer can no longer join a converged answer, which is all the scoring needs."""
        return self.complete(
            prompts,
            max_new,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            seed=seed,
            batch=batch,
            stop_at_turn_end=stop_at_turn_end,
            groups=groups,
        )[0]

    def complete(
        self,
        prompts: Sequence[Sequence[int]],
        max_new: int,
        *,
        temperature: float = 0.0,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int = 0,
        batch: int | None = None,
        stop_at_turn_end: bool = True,
        groups: Sequence[int] | None = None,
        spans: Sequence[Sequence[int]] | None = None,
    ) -> tuple[list[list[int]], Probe | None]:
        """`generate`, plus (with `spans`) the first-token `Probe` read off the same prefill."""
        size = batch or self.batch
        stops = self.stop_ids if stop_at_turn_end else self.eos_ids
        out: list[list[int]] = [[] for _ in prompts]
        probes: list[tuple[list[int], Probe]] = []
        for n, rows in enumerate(_chunks(len(prompts), size, groups)):
            produced, probe = self._generate(
                [prompts[r] for r in rows],
                max_new,
                _Decoding(temperature, top_k, top_p, seed + (rows[0] if groups is None else n)),
                stops,
                [groups[r] for r in rows] if groups is not None else None,
                [spans[r] for r in rows] if spans is not None else None,
            )
            for r, ids in zip(rows, produced, strict=True):
                out[r] = ids
            if probe is not None:
                probes.append((rows, probe))
            self.forwarded += sum(len(prompts[r]) for r in rows)
        if spans is None:
            return out, None
        return out, _reorder(self.torch, probes, len(prompts))

    def _prefill(self, prompts: Sequence[Sequence[int]], attentions: bool) -> _Prefill:
        """One forward pass over `prompts`; the prefix they all share runs once, its KV cache is
        repeated along the batch, and the rest is left-padded after it (masked)."""
        torch = self.torch
        shared = _common_prefix(prompts)
        shared = min(shared, min(len(p) for p in prompts) - 1)  # keep >= 1 token per row
        cache: Any = None
        if shared > 0:
            from transformers import DynamicCache  # noqa: PLC0415 - optional: transformers

            cache = DynamicCache(config=self.model.config)
            head = torch.tensor([list(prompts[0][:shared])], device=self.device)
            self.model(input_ids=head, cache=cache, use_cache=True, logits_to_keep=1)
            cache.batch_repeat_interleave(len(prompts))
        rests = [list(p[shared:]) for p in prompts]
        width = max(len(r) for r in rests)
        pads = [width - len(r) for r in rests]
        ids = torch.tensor(
            [[self.pad_id] * n + r for n, r in zip(pads, rests, strict=True)], device=self.device
        )
        mask = torch.tensor(
            [[1] * shared + [0] * n + [1] * len(r) for n, r in zip(pads, rests, strict=True)],
            device=self.device,
        )
        pos = (mask.cumsum(-1) - 1).clamp(min=0)[:, shared:]
        res = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=pos,
            cache=cache,
            use_cache=True,
            output_attentions=attentions,
            logits_to_keep=1,
        )
        return _Prefill(res, mask, shared, pads)

    def _generate(  # noqa: PLR0917 - private, called from one place
        self,
        prompts: Sequence[Sequence[int]],
        max_new: int,
        decoding: _Decoding,
        stops: set[int],
        groups: list[int] | None,
        spans: Sequence[Sequence[int]] | None,
    ) -> tuple[list[list[int]], Probe | None]:
        torch = self.torch
        gen = torch.Generator(device="cpu").manual_seed(decoding.seed)
        produced: list[list[int]] = [[] for _ in prompts]
        with torch.inference_mode():
            pre = self._prefill(prompts, attentions=spans is not None)
            res, mask = pre.res, pre.mask
            probe = self._probe_of(pre, spans) if spans is not None else None
            past = res.cache
            active = list(range(len(prompts)))  # rows still generating, in batch order
            for step in range(max_new):
                logits = res.logits[:, -1, :].float()
                nxt = (
                    self._pick_rows(logits, [decoding.rows[r] for r in active], gen)
                    if decoding.rows
                    else self._pick(logits, decoding, gen)
                ).tolist()
                keep: list[int] = []
                for slot, row in enumerate(active):
                    token = int(nxt[slot])
                    if token in stops:
                        continue
                    produced[row].append(token)
                    keep.append(slot)
                if groups is not None:
                    keep = _undecided(keep, active, produced, groups, self.special_ids)
                if not keep or step == max_new - 1:
                    break
                if len(keep) < len(active):
                    index = torch.tensor(keep, device=self.device)
                    past.batch_select_indices(index)
                    mask = mask[index]
                    active = [active[s] for s in keep]
                step_ids = torch.tensor([[produced[r][-1]] for r in active], device=self.device)
                mask = torch.cat([mask, torch.ones_like(step_ids)], dim=-1)
                pos = mask.sum(-1, keepdim=True) - 1
                res = self.model(
                    input_ids=step_ids,
                    attention_mask=mask,
                    position_ids=pos,
                    cache=past,
                    use_cache=True,
                    logits_to_keep=1,
                )
                self.forwarded += len(active)
        return produced, probe

    def _pick(self, logits: Any, decoding: _Decoding, gen: Any) -> Any:
        torch = self.torch
        if decoding.temperature <= 0:
            return logits.argmax(-1)
        logits = logits / decoding.temperature
        if decoding.top_k > 0:
            kth = torch.topk(logits, min(decoding.top_k, logits.shape[-1])).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        probs = torch.softmax(logits, -1)
        if decoding.top_p < 1.0:
            sorted_p, order = probs.sort(-1, descending=True)
            keep = sorted_p.cumsum(-1) - sorted_p < decoding.top_p
            sorted_p = sorted_p * keep
            probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
        return torch.multinomial(probs.cpu(), 1, generator=gen).squeeze(-1).to(self.device)

    def _pick_rows(
        self, logits: Any, settings: Sequence[tuple[float, int, float]], gen: Any
    ) -> Any:
        """Sampling with each row's own temperature, top-k and top-p: one sort serves all."""
        torch = self.torch
        temps = torch.tensor([max(t, 1e-6) for t, _, _ in settings], device=logits.device)
        ks = torch.tensor([k if k > 0 else logits.shape[-1] for _, k, _ in settings])
        ps = torch.tensor([p for _, _, p in settings], device=logits.device)
        values, order = (logits / temps[:, None]).sort(-1, descending=True)
        rank = torch.arange(values.shape[-1], device=logits.device)[None, :]
        values = values.masked_fill(rank >= ks.to(logits.device)[:, None], float("-inf"))
        probs = torch.softmax(values, -1)
        probs = probs * ((probs.cumsum(-1) - probs) < ps[:, None])
        picked = torch.multinomial(probs.cpu(), 1, generator=gen).to(logits.device)
        sampled = order.gather(-1, picked).squeeze(-1)
        greedy = torch.tensor([t <= 0 for t, _, _ in settings], device=logits.device)
        return torch.where(greedy, logits.argmax(-1), sampled)

    def sample(
        self,
        prompt: Sequence[int],
        settings: Sequence[tuple[float, int, float]],
        each: int,
        max_new: int,
        *,
        seed: int,
        stop_at_turn_end: bool,
    ) -> list[list[int]]:
        """`each` continuations of one prompt under every decoding setting, all in one wide
        batch (a decoding step costs about the same for 32 rows as for 384 on a CPU: the
        weights are read once per step either way)."""
        rows = tuple(s for s in settings for _ in range(each))
        stops = self.stop_ids if stop_at_turn_end else self.eos_ids
        out: list[list[int]] = []
        size = max(self.batch * 4, 1)
        for i in range(0, len(rows), size):
            part = rows[i : i + size]
            produced, _ = self._generate(
                [list(prompt)] * len(part),
                max_new,
                _Decoding(1.0, 0, 1.0, seed + i, part),
                stops,
                None,
                None,
            )
            out.extend(produced)
            self.forwarded += len(prompt) * len(part)
        return out

    # --- probing --------------------------------------------------------------------------------

    def probe(
        self,
        prompts: Sequence[Sequence[int]],
        spans: Sequence[Sequence[int]],
        *,
        batch: int | None = None,
    ) -> Probe:
        """First-response-token distributions (and attention on `spans`), no generation."""
        torch = self.torch
        size = batch or self.batch
        parts: list[Probe] = []
        attentions = any(spans)
        for i in range(0, len(prompts), size):
            chunk = prompts[i : i + size]
            with torch.inference_mode():
                pre = self._prefill(chunk, attentions=attentions)
                parts.append(self._probe_of(pre, spans[i : i + size]))
            self.forwarded += sum(len(p) for p in chunk)
        return _join(torch, parts)

    def _probe_of(self, pre: _Prefill, spans: Sequence[Sequence[int]]) -> Probe:
        torch = self.torch
        probs = torch.softmax(pre.res.logits[:, -1, :].float(), -1).cpu()
        entropy = (-(probs * probs.clamp_min(1e-12).log()).sum(-1)).tolist()
        to_span: list[float] = []
        self_att: list[float] = []
        if not any(spans) or not pre.res.attentions:
            zeros = [0.0] * len(spans)
            return Probe(probs, entropy, zeros, list(zeros))
        # [B, queries (the rest), keys (shared + rest)], mean over layers and heads
        att = torch.stack([a.float().mean(1) for a in pre.res.attentions]).mean(0).cpu()
        shared = pre.shared
        for row, (pad, span) in enumerate(zip(pre.pads, spans, strict=True)):
            cols = [shared + pad + (s - shared) for s in span if s >= shared]
            if not cols:
                to_span.append(0.0)
                self_att.append(0.0)
                continue
            to_span.append(float(att[row, -1, cols].sum()))
            if len(cols) > 1:
                queries = [c - shared for c in cols]
                self_att.append(float(att[row][queries][:, cols].sum(-1).mean()))
            else:
                self_att.append(0.0)
        return Probe(probs, entropy, to_span, self_att)


@dataclass(frozen=True, slots=True)
class _Decoding:
    temperature: float
    top_k: int
    top_p: float
    seed: int
    #: Per-row (temperature, top_k, top_p), when rows sample under different settings.
    rows: tuple[tuple[float, int, float], ...] = ()


@dataclass(frozen=True, slots=True)
class _Prefill:
    res: Any  # the model output (logits of the last position, cache, attentions)
    mask: Any  # [B, shared + width] attention mask
    shared: int  # tokens of the common prefix (run once)
    pads: list[int]  # left padding of each row after the prefix


def _common_prefix(prompts: Sequence[Sequence[int]]) -> int:
    first = prompts[0]
    n = min(len(p) for p in prompts)
    for p in prompts[1:]:
        i = 0
        while i < n and p[i] == first[i]:
            i += 1
        n = i
    return n


def _undecided(
    keep: list[int],
    active: list[int],
    produced: list[list[int]],
    groups: list[int],
    silent: set[int],
) -> list[int]:
    """Slots whose answer so far another row of the same group also has (a row that finished
    has its whole answer; rows still running have produced as many tokens as this one): the
    rest are decided, singletons whatever they say next. Tokens in `silent` (special tokens,
    which decoding drops) are left out of the comparison, and a row that said one is never
    decided early (its answer lags the others')."""
    counts: dict[tuple[int, tuple[int, ...]], int] = {}
    keys: list[tuple[int, tuple[int, ...]]] = []
    for row, out in enumerate(produced):
        key = (groups[row], tuple(t for t in out if t not in silent))
        keys.append(key)
        counts[key] = counts.get(key, 0) + 1
    # A row that said a silent token is out of step with the others: never decided early.
    lagging = {r for r, out in enumerate(produced) if any(t in silent for t in out)}
    return [s for s in keep if counts[keys[active[s]]] > 1 or active[s] in lagging]


def _chunks(count: int, size: int, groups: Sequence[int] | None) -> list[list[int]]:
    """Row indices in batches of at most `size`; with `groups`, a group is never split (its
    rows decide early against each other), so rows are packed group by group."""
    if groups is None:
        return [list(range(i, min(i + size, count))) for i in range(0, count, size)]
    members: dict[int, list[int]] = {}
    for row, g in enumerate(groups):
        members.setdefault(g, []).append(row)
    chunks: list[list[int]] = []
    current: list[int] = []
    for rows in members.values():
        if current and len(current) + len(rows) > size:
            chunks.append(current)
            current = []
        current = current + rows
    if current:
        chunks.append(current)
    return chunks


def _reorder(torch: Any, parts: list[tuple[list[int], Probe]], count: int) -> Probe:
    """The probes of the chunks, back in the order of the rows."""
    joined = _join(torch, [p for _, p in parts])
    order = [r for rows, _ in parts for r in rows]
    where = [0] * count
    for i, r in enumerate(order):
        where[r] = i
    index = torch.tensor(where)
    return Probe(
        joined.first_token_probs[index],
        [joined.entropy[i] for i in where],
        [joined.attention_to_span[i] for i in where],
        [joined.span_self_attention[i] for i in where],
    )


def _join(torch: Any, parts: list[Probe]) -> Probe:
    if len(parts) == 1:
        return parts[0]
    return Probe(
        torch.cat([p.first_token_probs for p in parts]),
        [e for p in parts for e in p.entropy],
        [a for p in parts for a in p.attention_to_span],
        [a for p in parts for a in p.span_self_attention],
    )
