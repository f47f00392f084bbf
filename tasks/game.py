"""A turn-based game as a task: positions of an environment in envs/ (its observations) as
prompts, and a legal move as the answer.

This is what the single-turn machinery needs of a game: the SFT warm-up learns to answer a
position with a random legal move (the starting policy of game self-play), and the held-out
metric is the share of held-out positions answered with a legal move (in games where any text
is a move, a debate's or Taboo's, the share answered at all). How well the policy
*plays* is measured by the `multi_turn` game (games/multi_turn.py): its win rates against
fixed opponents every iteration.
"""
from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from envs.base import EnvOptions, RandomPlayer, env_options
from prompts.example import Example
from tasks.base import TaskOptions, task_kind


@task_kind
class GameTaskOptions(TaskOptions):
    """Positions of a turn-based game; `env` names the game (`name`) and gives its options."""

    kind: Literal["game"] = "game"
    env: dict[str, Any] = Field(default_factory=lambda: {"name": "nim"}, description="the game (envs/): name and options")
    held_out_size: int = Field(128, ge=8, description="held-out positions scored every iteration (legal-move rate)")

    @model_validator(mode="after")
    def _env_exists(self) -> GameTaskOptions:
        self.environment()
        return self

    def environment(self) -> EnvOptions:
        return env_options(self.env)

    def build(self, seed: int) -> GameTask:
        return GameTask(self.environment(), self.held_out_size, seed)


class GameTask:
    """Positions reached by random legal play from seeded starts; training and held-out starts
    come from disjoint seed ranges (even and odd), so no held-out position is drawn for training
    by its seed (the same position may still arise both ways, as in any game)."""

    name = "game"
    open_ended = False

    def __init__(self, env: EnvOptions, held_out_size: int, seed: int) -> None:
        self.env = env
        self.held_out_size = held_out_size
        self.seed = seed

    def position(self, seed: int) -> Example:
        """One position, drawn uniformly from a random legal game from the start of `seed` (so
        openings and endings are as common as in play), with a random legal move as its answer."""
        env, player = self.env.make(), RandomPlayer(seed)
        env.reset(seed)
        seen = []
        while not env.done and env.awaiting() is None:  # a judged game's last move is as far as play goes alone
            seen.append((env.observation(env.turn), env.legal_actions()))
            env.step(player.act(env))
        observation, legal = seen[int(player.rng.integers(len(seen)))]
        answer = legal[int(player.rng.integers(len(legal)))]
        return Example(observation, answer, id=f"{self.env.name}-{seed}", fields={"legal": legal})

    def train(self, n: int, rng: np.random.Generator) -> list[Example]:
        return [self.position(2 * int(s)) for s in rng.integers(0, 2**30, size=n)]

    sft = train  # every position has a legal move to learn

    def held_out(self) -> list[Example]:
        rng = np.random.default_rng(self.seed + 4321)
        return [self.position(2 * int(s) + 1) for s in rng.integers(0, 2**30, size=self.held_out_size)]

    def score(self, example: Example, response: str) -> float:
        """1 for a legal move in the position (in a game where any text is a move, any answer that is not empty)."""
        if self.env.any_text:
            return float(bool(response.strip()))
        return float(response.strip() in example.fields["legal"])
