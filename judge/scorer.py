"""Scoring (prompt, response) text with a sequence-classification checkpoint.

Reward models (TRL's `RewardTrainer` writes `AutoModelForSequenceClassification` checkpoints
with one label) and principle classifiers share this. Each reads the exchange through its own
tokenizer's chat template (the prompt as the user's turn, the response as the assistant's),
or as `prompt + response + EOS` when it has none or was trained on plain text (TEXT_FORMAT),
as the reward trainer rendered it, so a model scores what it was trained on whatever template
the policy uses.
"""
from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from prompts.chat import TEXT_FORMAT, PromptRenderer
from prompts.example import Prompt


class ScorerError(ValueError):
    """A checkpoint that cannot score responses; the message says what to change."""


class SequenceScorer:
    """Batched logits of a sequence classifier over prompt + response."""

    def __init__(self, path: str | Path, batch_size: int = 64) -> None:
        path = Path(path)
        if not (path / "config.json").is_file():
            raise ScorerError(f"{str(path)!r} is not a Hugging Face checkpoint directory (no config.json there)")
        torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))
        self.path = path
        self.batch_size = batch_size
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.tokenizer.padding_side = "right"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForSequenceClassification.from_pretrained(path, dtype=torch.float32).eval()
        if self.model.config.pad_token_id is None:
            # the classifier reads the last non-pad token; it must know which id pads
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.num_labels = int(self.model.config.num_labels)
        self.render = PromptRenderer(self.tokenizer, "none" if (path / TEXT_FORMAT).is_file() else "auto")

    @torch.no_grad()
    def logits(self, prompts: Sequence[Prompt], responses: list[str]) -> torch.Tensor:
        """[n, num_labels] logits, in batches of `batch_size`."""
        texts = [self.render.conversation(p, r) for p, r in zip(prompts, responses, strict=True)]
        out = [torch.empty(0, self.num_labels)]
        for begin in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(texts[begin : begin + self.batch_size], return_tensors="pt", padding=True)
            out.append(self.model(**batch).logits.float())
        return torch.cat(out)


@functools.lru_cache(maxsize=8)
def load_scorer(path: str) -> SequenceScorer:
    """One loaded model per checkpoint per process, however many judges or principles use it."""
    return SequenceScorer(path)
