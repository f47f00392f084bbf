"""Turning (prompt, response) text into padded token batches, and scoring them.

Both SFT and DPO need the same two things: the sequence `prompt + response + end` (EOS, or a
chat template's end of turn) with a mask over the response tokens, and the summed log-probability of those tokens.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel, PreTrainedTokenizerBase


def encode_pairs(
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    responses: list[str],
    answer_end: str | None = None,
    ended: list[bool] | None = None,
) -> dict[str, torch.Tensor]:
    """Right-padded `input_ids`, `attention_mask` and `completion_mask` (1 on response tokens and
    on what ends them: `answer_end`, a chat template's end of turn, or else EOS). A response whose
    `ended` flag is false (cut off at the token limit) gets no end: it did not end there."""
    end = tokenizer(answer_end, add_special_tokens=False)["input_ids"] if answer_end else [tokenizer.eos_token_id]
    rows: list[list[int]] = []
    masks: list[list[int]] = []
    for prompt, response, done in zip(prompts, responses, ended or [True] * len(responses), strict=True):
        prompt_ids = tokenizer(prompt)["input_ids"]
        response_ids = tokenizer(response, add_special_tokens=False)["input_ids"] + (end if done else [])
        rows.append(prompt_ids + response_ids)
        masks.append([0] * len(prompt_ids) + [1] * len(response_ids))
    width = max(len(r) for r in rows)
    # many checkpoints (GPT-2, Llama) have no pad token; the padding is masked out, so EOS serves
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    input_ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
    attention = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    completion = torch.tensor([m + [0] * (width - len(m)) for m in masks])
    return {"input_ids": input_ids, "attention_mask": attention, "completion_mask": completion}


def on_device(batch: dict[str, torch.Tensor], model: PreTrainedModel) -> dict[str, torch.Tensor]:
    """The batch on the model's device (a learner on a GPU encodes on the CPU)."""
    return {key: value.to(model.device) for key, value in batch.items()}


def token_logps(model: PreTrainedModel, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log-probabilities of each next token, and the shifted completion mask.

    Position t scores token t+1, as in TRL, so both tensors have width `seq_len - 1`.
    """
    batch = on_device(batch, model)
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits
    logps = F.log_softmax(logits[:, :-1].float(), dim=-1)
    labels = batch["input_ids"][:, 1:]
    mask = batch["completion_mask"][:, 1:].to(logps.dtype)
    per_token = logps.gather(-1, labels.unsqueeze(-1)).squeeze(-1) * mask
    return per_token, mask
