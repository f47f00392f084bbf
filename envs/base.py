"""The turn-based environment interface, and its registry.

An environment holds one episode of a game between two players (seats 0 and 1): `reset` with a
seed, `turn` says whose move it is, `observation` is what that player sees (text the policy
answers), `step` plays one action. In the built-in games an action the rules do not allow ends
the episode at once and loses it for its player (the opponent wins); TextArena's games follow
their own rules (a retry, then the loss). `reason` says why an episode ended. Rewards
are +1 for a win, -1 for a loss and 0 for each player in a draw.

A game decided by judges (a debate) says so with `awaiting`: once the last move is made it
holds a matchup, the lockstep player batches every waiting episode's matchup into one call to
the run's judge pool, and `settle` ends each episode on its verdict.

Each game is one module in this folder: its options (a recipe section with a `name` default,
filed with `@environment`) and a `make()` that builds a fresh environment. The fixed opponents
of evaluation live here too: a random legal-move player and, where a game has one, `expert`.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Any, ClassVar, Protocol, TypeVar

import numpy as np
from pydantic import ValidationError

from cluster.section import RecipeSection
from judge.verdict import Verdict
from prompts.example import Example

WIN, LOSS, DRAW = 1.0, -1.0, 0.0

Matchup = tuple[Example, str, str]  # what judges compare: the question, side a's answer, side b's


class EnvError(ValueError):
    """An environment asked for what it cannot do (an unknown game, a step after the end)."""


class TurnEnv(Protocol):
    """One episode of a two-player, turn-based game."""

    def reset(self, seed: int) -> None: ...

    @property
    def turn(self) -> int:
        """The seat to move: 0 or 1."""
        ...

    @property
    def done(self) -> bool: ...

    @property
    def reason(self) -> str:
        """Why the episode ended ('' while it runs): a win, a draw, an invalid move, the turn limit."""
        ...

    def observation(self, player: int) -> str: ...

    def legal_actions(self) -> list[str]: ...

    def step(self, action: str) -> bool:
        """Play `action` for the player to move; False (and the episode over, lost) when not allowed."""
        ...

    def rewards(self) -> tuple[float, float]:
        """Each seat's reward once the episode is over."""
        ...

    def expert(self) -> str | None:
        """A perfect or heuristic move for the player to move, or None where the game has no expert."""
        ...

    def awaiting(self) -> Matchup | None:
        """The matchup this episode waits on judges for (its moves are over), or None."""
        ...

    def settle(self, verdict: Verdict) -> None:
        """End the episode that `awaiting` held on the judges' verdict."""
        ...


class Ending:
    """What every environment keeps of an episode's end: why it ended ('' while it runs) and
    each seat's reward. `_begin` at reset; `_end` with the winning seat (None: a draw)."""

    _reason: str = ""
    _rewards: tuple[float, float] = (DRAW, DRAW)

    def _begin(self) -> None:
        self._reason, self._rewards = "", (DRAW, DRAW)

    def _end(self, winner: int | None, reason: str) -> None:
        self._reason = reason
        self._rewards = (DRAW, DRAW) if winner is None else ((WIN, LOSS) if winner == 0 else (LOSS, WIN))

    @property
    def done(self) -> bool:
        return bool(self._reason)

    @property
    def reason(self) -> str:
        return self._reason

    def rewards(self) -> tuple[float, float]:
        return self._rewards

    def awaiting(self) -> Matchup | None:
        return None  # games decided by their rules, the most

    def settle(self, verdict: Verdict) -> None:
        raise EnvError("this game is decided by its rules, not by judges")


class EnvOptions(RecipeSection):
    """An environment's recipe section; subclasses set `name` (a Literal default) and `make`."""

    name: str
    max_turns: int = 40
    has_expert: ClassVar[bool] = True  # False where the game has no expert: its `expert()` is always None

    @property
    def any_text(self) -> bool:
        """Whether any text is a valid move (a debate's argument): `legal_actions` then lists only examples."""
        return self.judged

    @property
    def judged(self) -> bool:
        """Whether the run's judges decide its episodes (see `TurnEnv.awaiting`)."""
        return False

    @property
    def label(self) -> str:
        """The game's name in records (episodes' `game`, the REINFORCE baseline's key)."""
        return self.name

    def make(self) -> TurnEnv:
        raise NotImplementedError(f"environment {self.name!r} defines no make()")


ENVIRONMENTS: dict[str, type[EnvOptions]] = {}
E = TypeVar("E", bound=type[EnvOptions])


def environment(options: E) -> E:
    """Register an environment by its options model; its `name` field's default is the key."""
    fields: dict[str, Any] = options.__pydantic_fields__
    ENVIRONMENTS[fields["name"].default] = options
    return options


def environments() -> dict[str, type[EnvOptions]]:
    """Every environment: the folder's modules are imported on the first call (a new game is one
    new file; recipes ask for their game every iteration)."""
    if not _FOLDER_READ:
        import envs

        for module in pkgutil.iter_modules(envs.__path__):
            importlib.import_module(f"envs.{module.name}")
        _FOLDER_READ.append(True)
    return dict(ENVIRONMENTS)


_FOLDER_READ: list[bool] = []


def env_options(section: dict[str, Any]) -> EnvOptions:
    """A recipe's `env` section (`name` and the game's own options) as its options model."""
    known = environments()
    name = section.get("name")
    if name not in known:
        raise EnvError(f"unknown environment {name!r}; known: {', '.join(sorted(known))} (one file each in envs/)")
    options = known[name]
    try:
        return options.model_validate(section)
    except ValidationError as err:
        first = err.errors()[0]
        where = "".join(f"{part}: " for part in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        raise EnvError(f"env {name!r}: {where}{message}; its options are {', '.join(options.model_fields)}") from None


class RandomPlayer:
    """Plays a uniformly random legal move: the fixed opponent every game has."""

    name: ClassVar[str] = "random"

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def act(self, env: TurnEnv) -> str:
        legal = env.legal_actions()
        return legal[int(self.rng.integers(len(legal)))]


class ExpertPlayer:
    """The game's own perfect or heuristic move (`TurnEnv.expert`)."""

    name: ClassVar[str] = "expert"

    def act(self, env: TurnEnv) -> str:
        move = env.expert()
        if move is None:
            raise EnvError("this game has no expert player")
        return move


def outcome(rewards: tuple[float, float], seat: int) -> float:
    """A seat's score in [0, 1]: 1 a win, 0.5 a draw, 0 a loss (what ratings are fitted on)."""
    return (rewards[seat] + 1.0) / 2.0
