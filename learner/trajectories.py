"""Learning from multi-turn episodes: a trajectory is one player's moves in an episode, each
move a (prompt, action) sequence. Observations are prompts, so only action tokens count.

DPO compares two trajectories by the log-probability of all their action tokens: `gather_actions`
lays each trajectory's action tokens out as one row, and the ordinary DPO loss takes the rows.
REINFORCE weighs each move's log-probability by its episode's reward less a baseline kept per
game and seat (SPIRAL's role-conditioned advantage), read before the episode updates it.
"""
from __future__ import annotations

import torch


def gather_actions(per_token: torch.Tensor, mask: torch.Tensor, owners: list[int], n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each of `n` trajectories' action tokens (from the moves `owners` assigns to it, in order)
    as one zero-padded row of log-probabilities, and its mask; gradients flow through."""
    pieces: list[list[torch.Tensor]] = [[] for _ in range(n)]
    for row, owner in enumerate(owners):
        pieces[owner].append(per_token[row][mask[row].bool()])
    rows = [torch.cat(p) if p else per_token.new_zeros(0) for p in pieces]
    width = max(1, max(len(r) for r in rows))
    tokens = per_token.new_zeros(n, width)
    keep = mask.new_zeros(n, width)
    for i, r in enumerate(rows):
        tokens[i, : len(r)] = r
        keep[i, : len(r)] = 1
    return tokens, keep


class RoleBaseline:
    """A moving average of the reward per (game, seat): b <- decay * b + (1 - decay) * reward."""

    def __init__(self, decay: float = 0.95, values: dict[str, float] | None = None) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"the baseline's decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.values = dict(values or {})

    def advantage(self, game: str, seat: int, reward: float) -> float:
        """The episode's advantage against the baseline as it stood, then the baseline updated."""
        key = f"{game}/{seat}"
        before = self.values.get(key, 0.0)
        self.values[key] = self.decay * before + (1.0 - self.decay) * reward
        return reward - before


def reinforce_loss(token_logps: torch.Tensor, mask: torch.Tensor, advantages: torch.Tensor) -> torch.Tensor:
    """-mean over moves of advantage x the move's summed action-token log-probability."""
    per_move = (token_logps * mask).sum(-1)
    return -(advantages * per_move).mean()


def kl_to_reference(token_logps: torch.Tensor, ref_token_logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The mean over action tokens of the k3 estimate of KL(policy || reference),
    exp(r) - r - 1 with r = ref - policy log-probability: never negative, zero where they agree."""
    r = (ref_token_logps - token_logps) * mask
    return ((torch.exp(r) - r - 1) * mask).sum() / mask.sum().clamp(min=1)
