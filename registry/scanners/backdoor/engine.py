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


def pick_device(choice: str) -> str:
    import torch  # noqa: PLC0415 - optional: torch (the ml extra)

    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for but torch sees no CUDA device")
    return choice


class Engine:
    def __init__(self, folder: Path, device: str) -> None:
        # Optional: torch and transformers (the ml extra; see the module docstring).
        import torch  # noqa: PLC0415
        import transformers  # noqa: PLC0415
        from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: PLC0415

        hf_logging: Any = transformers.utils.logging
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        self.torch = torch
        self.device = device
        self.tok: Any = AutoTokenizer.from_pretrained(
            folder, trust_remote_code=False, local_files_only=True
        )
        loader: Any = AutoModelForCausalLM
        self.model: Any = loader.from_pretrained(
            folder,
            use_safetensors=True,
            trust_remote_code=False,
            local_files_only=True,
            attn_implementation="eager",
            dtype=torch.float32 if device == "cpu" else torch.bfloat16,
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
        batch: int = 64,
        stop_at_turn_end: bool = True,
    ) -> list[list[int]]:
        stops = self.stop_ids if stop_at_turn_end else self.eos_ids
        out: list[list[int]] = []
        for i in range(0, len(prompts), batch):
            chunk = prompts[i : i + batch]
            out.extend(self._generate(chunk, max_new, temperature, top_k, top_p, seed + i, stops))
        return out

    def _generate(  # noqa: PLR0917 - private, called from one place
        self,
        prompts: Sequence[Sequence[int]],
        max_new: int,
        temperature: float,
        top_k: int,
        top_p: float,
        seed: int,
        stops: set[int],
    ) -> list[list[int]]:
        torch = self.torch
        gen = torch.Generator(device="cpu").manual_seed(seed)
        width = max(len(p) for p in prompts)
        ids = torch.tensor([[self.pad_id] * (width - len(p)) + list(p) for p in prompts])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        ids, mask = ids.to(self.device), mask.to(self.device)
        done = torch.zeros(len(prompts), dtype=torch.bool, device=self.device)
        produced: list[list[int]] = [[] for _ in prompts]
        past = None
        step_ids = ids
        with torch.inference_mode():
            for _ in range(max_new):
                pos = (mask.cumsum(-1) - 1).clamp(min=0)[:, -step_ids.shape[1] :]
                res = self.model(
                    input_ids=step_ids,
                    attention_mask=mask,
                    position_ids=pos,
                    cache=past,
                    use_cache=True,
                )
                past = res.cache
                logits = res.logits[:, -1, :].float()
                nxt = self._pick(logits, temperature, top_k, top_p, gen)
                for row, token in enumerate(nxt.tolist()):
                    if not done[row]:
                        if token in stops:
                            done[row] = True
                        else:
                            produced[row].append(int(token))
                if bool(done.all()):
                    break
                step_ids = nxt.unsqueeze(-1)
                mask = torch.cat([mask, torch.ones_like(step_ids)], dim=-1)
        return produced

    def _pick(self, logits: Any, temperature: float, top_k: int, top_p: float, gen: Any) -> Any:
        torch = self.torch
        if temperature <= 0:
            return logits.argmax(-1)
        logits = logits / temperature
        if top_k > 0:
            kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        probs = torch.softmax(logits, -1)
        if top_p < 1.0:
            sorted_p, order = probs.sort(-1, descending=True)
            keep = sorted_p.cumsum(-1) - sorted_p < top_p
            sorted_p = sorted_p * keep
            probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
        return torch.multinomial(probs.cpu(), 1, generator=gen).squeeze(-1).to(self.device)

    # --- probing --------------------------------------------------------------------------------

    def probe(
        self, prompts: Sequence[Sequence[int]], spans: Sequence[Sequence[int]], *, batch: int = 64
    ) -> Probe:
        torch = self.torch
        probs_all: list[Any] = []
        entropy: list[float] = []
        to_span: list[float] = []
        self_att: list[float] = []
        for i in range(0, len(prompts), batch):
            chunk = prompts[i : i + batch]
            chunk_spans = spans[i : i + batch]
            width = max(len(p) for p in chunk)
            pads = [width - len(p) for p in chunk]
            ids = torch.tensor(
                [[self.pad_id] * n + list(p) for n, p in zip(pads, chunk, strict=True)]
            )
            mask = torch.tensor([[0] * n + [1] * len(p) for n, p in zip(pads, chunk, strict=True)])
            pos = (mask.cumsum(-1) - 1).clamp(min=0)
            with torch.inference_mode():
                res = self.model(
                    input_ids=ids.to(self.device),
                    attention_mask=mask.to(self.device),
                    position_ids=pos.to(self.device),
                    output_attentions=True,
                    use_cache=False,
                )
            probs = torch.softmax(res.logits[:, -1, :].float(), -1).cpu()
            probs_all.append(probs)
            entropy.extend((-(probs * probs.clamp_min(1e-12).log()).sum(-1)).tolist())
            att = torch.stack([a.float().mean(1) for a in res.attentions]).mean(0).cpu()  # [B,L,L]
            for row, (n, span) in enumerate(zip(pads, chunk_spans, strict=True)):
                cols = [n + s for s in span]
                if not cols:
                    to_span.append(0.0)
                    self_att.append(0.0)
                    continue
                to_span.append(float(att[row, -1, cols].sum()))
                if len(cols) > 1:
                    sub = att[row][cols][:, cols]
                    self_att.append(float(sub.sum(-1).mean()))
                else:
                    self_att.append(0.0)
        return Probe(torch.cat(probs_all), entropy, to_span, self_att)
