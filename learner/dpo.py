"""DPO's loss family against a frozen reference, as TRL's DPO trainer names and weighs it.

`dpo.loss_type` lists the terms and `dpo.loss_weights` their weights, as TRL's
`DPOConfig(loss_type=[...], loss_weights=[...])` takes them; `dpo.nll_weight` adds the `sft`
term (an NLL on the chosen answer, as in RPO), which anchors plain DPO on tiny models (alone it
can lower the likelihood of both answers). A test holds every term equal to TRL's loss on the
same batch.

TRL computes these inside its trainer's step, so they cannot be called from there: each term
here is one line over the pair's log-ratios, in TRL's form (`ipo` divides by the answers' token
counts as TRL does; `robust` and `exo_pair` read `label_smoothing`). `sppo_hard` is SPPO's
square loss (Wu et al., 2024, eq. 4.7) with the winner's preference probability 1 and the
loser's 0, what one judged game gives, and eta = 1 / beta.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Ratios:
    """One batch of pairs as the terms read it: log pi/pi_ref of each answer, and answer lengths."""

    chosen: torch.Tensor
    rejected: torch.Tensor
    chosen_tokens: torch.Tensor
    rejected_tokens: torch.Tensor
    beta: float
    label_smoothing: float

    @property
    def delta(self) -> torch.Tensor:
        return self.chosen - self.rejected


def _ipo(r: Ratios) -> torch.Tensor:
    per_token = r.chosen / r.chosen_tokens.clamp(min=1.0) - r.rejected / r.rejected_tokens.clamp(min=1.0)
    return (per_token - 1 / (2 * r.beta)) ** 2


def _exo_pair(r: Ratios) -> torch.Tensor:
    eps = torch.tensor(r.label_smoothing, device=r.delta.device)
    z = r.beta * r.delta
    return torch.sigmoid(z) * (F.logsigmoid(z) - torch.log1p(-eps)) + torch.sigmoid(-z) * (F.logsigmoid(-z) - torch.log(eps))


def _robust(r: Ratios) -> torch.Tensor:
    z, eps = r.beta * r.delta, r.label_smoothing
    return (-(1 - eps) * F.logsigmoid(z) + eps * F.logsigmoid(-z)) / (1 - 2 * eps)


PER_PAIR: dict[str, Callable[[Ratios], torch.Tensor]] = {
    "sigmoid": lambda r: -F.logsigmoid(r.beta * r.delta),
    "hinge": lambda r: torch.relu(1 - r.beta * r.delta),
    "ipo": _ipo,
    "exo_pair": _exo_pair,
    "nca_pair": lambda r: -F.logsigmoid(r.beta * r.chosen) - 0.5 * F.logsigmoid(-r.beta * r.chosen) - 0.5 * F.logsigmoid(-r.beta * r.rejected),
    "robust": _robust,
    "bco_pair": lambda r: -F.logsigmoid(r.beta * r.chosen) - F.logsigmoid(-r.beta * r.rejected),
    "sppo_hard": lambda r: (r.chosen - 0.5 / r.beta) ** 2 + (r.rejected + 0.5 / r.beta) ** 2,
    "apo_zero": lambda r: 1 - torch.sigmoid(r.beta * r.chosen) + torch.sigmoid(r.beta * r.rejected),
    "apo_down": lambda r: torch.sigmoid(r.beta * r.chosen) + 1 - torch.sigmoid(r.beta * r.delta),
}


LOSS_TYPES = (*PER_PAIR, "sft")  # what `dpo.loss_type` may name (cluster/config.py checks it)


@dataclass(frozen=True)
class DPOLoss:
    loss: torch.Tensor
    dpo: torch.Tensor  # the preference terms, weighted
    nll: torch.Tensor  # the NLL on chosen tokens (the `sft` term), unweighted
    reward_accuracy: float
    reward_margin: float


def dpo_loss(
    chosen_token_logps: torch.Tensor,
    rejected_token_logps: torch.Tensor,
    chosen_mask: torch.Tensor,
    rejected_mask: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float,
    terms: Sequence[tuple[str, float]] = (("sigmoid", 1.0),),
    label_smoothing: float = 0.0,
    batch_pairs: int | None = None,
    batch_chosen_tokens: int | None = None,
) -> DPOLoss:
    """The weighted sum of `terms` ((loss type, weight) pairs) for one batch, or one micro-batch of it.

    `*_token_logps` are the policy's per-token log-probabilities (zero off the answer);
    `ref_*_logps` the reference's, summed per sequence. Each pair term is a mean over pairs and
    `sft` a mean over every chosen token in the batch; for a micro-batch, `batch_pairs` and
    `batch_chosen_tokens` are the whole batch's counts, so the micro-batches' losses add up to
    the whole batch's and accumulated gradients equal one big step's.
    """
    ratios = Ratios(chosen_token_logps.sum(-1) - ref_chosen_logps, rejected_token_logps.sum(-1) - ref_rejected_logps,
                    chosen_mask.sum(-1).to(chosen_token_logps.dtype), rejected_mask.sum(-1).to(rejected_token_logps.dtype),
                    beta, label_smoothing)
    pairs = batch_pairs or ratios.chosen.numel()
    nll = -chosen_token_logps[chosen_mask.bool()].sum() / (batch_chosen_tokens or chosen_mask.sum())
    preference = sum((weight * PER_PAIR[name](ratios).sum() / pairs for name, weight in terms if name != "sft"),
                     torch.zeros((), device=nll.device))
    sft_weight = math.fsum(weight for name, weight in terms if name == "sft")
    loss = preference + sft_weight * nll if sft_weight else preference
    with torch.no_grad():
        reward_accuracy = (ratios.delta > 0).float().mean().item()
        reward_margin = (beta * ratios.delta).mean().item()
    return DPOLoss(loss, preference.detach(), nll.detach(), reward_accuracy, reward_margin)
