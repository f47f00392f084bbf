"""Turning an `Example`'s prompt into the text a model reads: its chat template, or raw text.

One renderer serves every place a prompt meets the policy (generation, the warm-up, DPO
pairs, evaluation), so what the learner trains on is exactly what the generators answered.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from prompts.example import Example, Prompt

# Written beside a reward model trained on plain-text rows (the staged pipeline's): it reads
# `prompt + response + EOS` even where its tokenizer has a chat template.
TEXT_FORMAT = "selfplay-text-format.json"


class PromptRenderer:
    """`template`: `auto` (the tokenizer's chat template when it has one, else raw text),
    `none` (raw text, for base models), or the path of a Jinja template file.

    A template that writes the BOS token itself would get a second one from a tokenizer that
    adds it; the renderer leaves the template's off, so plain tokenization gives the template's
    exact tokens everywhere."""

    def __init__(self, tokenizer: Any, template: str | Path = "auto", system_prompt: str | None = None) -> None:
        self.tokenizer = tokenizer
        self.system_prompt = system_prompt
        if str(template) not in ("auto", "none"):
            tokenizer.chat_template = Path(template).read_text()
        self.chat = str(template) != "none" and bool(getattr(tokenizer, "chat_template", None))
        self._strip = _added_bos(tokenizer) if self.chat else None

    @classmethod
    def for_model(cls, path: str | Path, template: str | Path = "auto", system_prompt: str | None = None) -> PromptRenderer:
        from transformers import AutoTokenizer

        return cls(AutoTokenizer.from_pretrained(path), template, system_prompt)

    def __call__(self, example: Example | Prompt) -> str:
        prompt = example.prompt if isinstance(example, Example) else example
        if not self.chat:
            return self._raw(prompt)
        messages = self.messages(prompt)
        return self._unbos(self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))

    def conversation(self, prompt: Prompt, answer: str) -> str:
        """The prompt and an answer as one finished exchange, as a reward model or a classifier
        reads it (TRL's RewardTrainer renders conversational rows the same way): through the
        chat template, the answer as the assistant's turn; raw text ends with the EOS token."""
        if not self.chat:
            return self._raw(prompt) + answer + (self.tokenizer.eos_token or "")
        turns = [*self.messages(prompt), {"role": "assistant", "content": answer}]
        return self._unbos(self.tokenizer.apply_chat_template(turns, tokenize=False))

    def _unbos(self, text: str) -> str:
        return text[len(self._strip):] if self._strip and text.startswith(self._strip) else text

    @property
    def answer_end(self) -> str | None:
        """What the chat template writes after an assistant turn's content (`<|im_end|>\n` for
        ChatML), which DPO and SFT append to every answer as TRL does; None for raw text, where
        the tokenizer's EOS ends an answer."""
        if not self.chat:
            return None
        mark = "\x00answer\x00"
        turns = [{"role": "user", "content": "x"}, {"role": "assistant", "content": mark}]
        text = self.tokenizer.apply_chat_template(turns, tokenize=False)
        end = text.split(mark, 1)[1] if mark in text else ""
        return end or None

    def messages(self, prompt: Prompt) -> list[dict[str, str]]:
        """The chat messages of a prompt: a string is one user turn; the system prompt goes first
        unless the prompt brings its own."""
        turns = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else [dict(m) for m in prompt]
        if self.system_prompt is not None and not (turns and turns[0].get("role") == "system"):
            turns.insert(0, {"role": "system", "content": self.system_prompt})
        return turns

    def _raw(self, prompt: Prompt) -> str:
        if isinstance(prompt, str):
            return prompt if self.system_prompt is None else f"{self.system_prompt}\n\n{prompt}"
        return "\n\n".join(m["content"] for m in self.messages(prompt))


def _added_bos(tokenizer: Any) -> str | None:
    """The BOS token's text when the tokenizer puts it before every text itself, else None."""
    bos = getattr(tokenizer, "bos_token", None)
    bos_id = getattr(tokenizer, "bos_token_id", None)
    if bos is None or bos_id is None:
        return None
    ids = tokenizer("x")["input_ids"]
    return bos if ids and ids[0] == bos_id else None

