"""The DPO objective: sigmoid DPO against a frozen reference, with an optional NLL term on chosen.

Plain DPO is fragile on tiny models (it can lower the likelihood of both answers); the NLL
term on the chosen response (as in RPO) anchors it. This is TRL's `loss_type=["sigmoid", "sft"]`
with `loss_weights=[1, nll_weight]`, and a test holds the two equal.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class DPOLoss:
    loss: torch.Tensor
    dpo: torch.Tensor
    nll: torch.Tensor
    reward_accuracy: float
    reward_margin: float


def dpo_loss(
    chosen_token_logps: torch.Tensor,
    rejected_token_logps: torch.Tensor,
    chosen_mask: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float,
    nll_weight: float,
    batch_pairs: int | None = None,
    batch_chosen_tokens: int | None = None,
) -> DPOLoss:
    """Loss for one batch, or for one micro-batch of it.

    `*_token_logps` are the policy's per-token log-probabilities (zero off the response);
    `ref_*_logps` are the reference's summed log-probabilities per sequence.
    The NLL term is a per-token mean over every chosen token in the batch. For a micro-batch,
    `batch_pairs` and `batch_chosen_tokens` are the whole batch's counts: the micro-batches'
    losses then add up to the whole batch's, so accumulated gradients equal one big step's.
    """
    chosen = chosen_token_logps.sum(-1)
    rejected = rejected_token_logps.sum(-1)
    margin = (chosen - ref_chosen_logps) - (rejected - ref_rejected_logps)
    dpo = -F.logsigmoid(beta * margin).sum() / (batch_pairs or margin.numel())
    nll = -chosen_token_logps[chosen_mask.bool()].sum() / (batch_chosen_tokens or chosen_mask.sum())
    loss = dpo + nll_weight * nll if nll_weight else dpo
    with torch.no_grad():
        reward_accuracy = (margin > 0).float().mean().item()
        reward_margin = (beta * margin).mean().item()
    return DPOLoss(loss, dpo.detach(), nll.detach(), reward_accuracy, reward_margin)
