"""What a way of playing is: a `Game`, found by name in a registry that reads this folder.

A game has two halves that run in two places. `play` runs on the driver: it asks generators
for answers and judges for verdicts, and hands what it gathered to the league actor as object
references, so the texts go from generators to the league without the driver. `record` runs
inside the league actor and is plain Python: from what was played it makes the records to
write, the preference pairs, the rated results and the metrics row's fields (see `Recorded`).
The league actor writes the records, rates the results and returns the fields and the pairs.

A new game is one file in this folder: a `Game` subclass under `@game`, with its recipe section
(`options`) if it has one. The recipe's `self_play.modes` names the games an iteration plays.
"""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import numpy as np
import pyarrow as pa

from cluster.section import RecipeSection
from league.league import CURRENT, GameResult, snapshot_name
from league.ratings import wilson_interval
from prompts.example import Example

if TYPE_CHECKING:  # the driver's parts, only named here: a recipe is read without Ray or vLLM
    from actors.generator import Sampling
    from actors.pool import GeneratorPool
    from cluster.agents import Agent
    from cluster.run_dir import RunDir
    from judge.pool import JudgePool
    from tasks.base import Task


@dataclass
class Recorded:
    """What `Game.record` makes of one round: `tables` are written as
    `<folder>/round-N.parquet`, `pairs` (PAIR_SCHEMA) as `pairs/round-N-<tag>.parquet`,
    `results` are rated by the league (Elo, Bradley-Terry, payoff), `fields` go in the row."""

    fields: dict[str, Any]
    pairs: pa.Table
    tables: dict[str, pa.Table] = field(default_factory=dict)
    results: list[GameResult] = field(default_factory=list)


@dataclass
class Played:
    """What `Game.play` gives the driver: the row's fields and the round's pairs (an object reference)."""

    fields: dict[str, Any]
    pairs: Any


@dataclass
class PlayContext:
    """What a game may use on the driver, built by the orchestrator for each iteration."""

    config: Any  # the run's RunConfig (cluster/config.py)
    task: Task
    render: Callable[[Example], str]  # an example as the policy's prompt text (its chat template)
    rng: np.random.Generator
    sampling: Sampling
    greedy: Sampling  # for evaluation
    judges: JudgePool
    league: Any  # the league actor
    snapshots: GeneratorPool  # serves any snapshot by name
    agents: dict[str, Agent]  # the learning agents by name: `current`, and league roles' exploiters
    run: RunDir

    def seeds(self, n: int) -> list[int]:
        return [int(s) for s in self.rng.integers(0, 2**31, size=n)]

    def versions(self) -> dict[str, int]:
        """The version each learning agent's generators serve now."""
        return {name: agent.version for name, agent in self.agents.items()}


class Game:
    """One way of playing. Subclasses set the class attributes, `play` and `record`."""

    name: ClassVar[str]
    # Its recipe section (the top-level key is the game's name), or None.
    options: ClassVar[type[RecipeSection] | None] = None
    # Suffix of its pair files, pairs/round-N-<tag>.parquet ("" for head-to-head, the first game).
    tag: ClassVar[str]
    # Folders its `Recorded.tables` go to (a resumed run rewinds them with `pairs/`).
    folders: ClassVar[tuple[str, ...]] = ()
    # The row field that counts its games (the dashboard's games counter), or None.
    counted: ClassVar[str | None] = None
    # Whether it plays matchmade opponents, so league roles' exploiters play it too.
    matchmade: ClassVar[bool] = False
    # `record(round_, *played)`: runs in the league actor on what `play` sent it.
    record: Callable[..., Recorded]

    def play(self, ctx: PlayContext, agent: Agent, round_: int, size: int | None = None) -> Played:
        """One round for `agent` on `size` prompts (the recipe's number by default)."""
        raise NotImplementedError(f"game {self.name!r} defines no play()")

    def check(self, config: Any) -> None:
        """Refuse a recipe this game cannot play (a ValueError saying what to change)."""

    def evaluate(self, ctx: PlayContext, agent: Agent) -> dict[str, Any]:
        """The game's own measures of `agent` after each update (and of the starting policy)."""
        return {}

    def special_tokens(self, config: Any) -> list[str]:
        """Tokens the game adds to the policy's tokenizer before the warm-up."""
        return []

    def warm_up_prompt(self, config: Any, prompt: str, rng: np.random.Generator) -> str:
        """A warm-up (SFT) prompt as this game wants the starting policy to have seen it."""
        return prompt


GAMES: dict[str, Game] = {}
G = TypeVar("G", bound=type[Game])


def game(cls: G) -> G:
    """Register a game under its `name`."""
    GAMES[cls.name] = cls()
    return cls


def registry() -> dict[str, Game]:
    """Every game: the folder's modules are imported on the first call (a new game is one new
    file); games registered later (`@game` anywhere) are in later answers too."""
    if not _FOLDER_READ:
        import games as package

        for module in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"games.{module.name}")
        _FOLDER_READ.append(True)
    return dict(GAMES)


_FOLDER_READ: list[bool] = []  # the games folder has been imported (the driver asks every iteration)


def settle(ctx: PlayContext, agent: Agent, fields: dict[str, Any]) -> dict[str, Any]:
    """After a rated round (`fields` from the league actor, with its `summary`): the agent's
    snapshot admitted if it earned it, and the row's rating fields (the whole league's ratings
    once an iteration, in the current policy's row)."""
    import ray

    fields = dict(fields)
    summary = fields.pop("summary")
    admitted = None
    if summary.admissible:
        snapshot = str(ctx.run.checkpoint(snapshot_name(agent.name, agent.version)))
        save = agent.learner.save_snapshot
        # the main learner trains the next version meanwhile: the served one is frozen beside it (exploiters train in step: idle now)
        if ctx.config.self_play.max_staleness and agent.name == CURRENT:
            from learner.actor import SNAPSHOTS

            save = save.options(concurrency_group=SNAPSHOTS)
        path = save.remote(snapshot, str(ctx.run.checkpoint("v0")), agent.version)
        admitted = ray.get(ctx.league.admit.remote(agent.version, path, agent.name)).name
    low, high = wilson_interval(summary.win_rate_vs_latest or 0.0, summary.games_vs_latest)
    fields.update(
        win_rate_vs_previous=summary.win_rate_vs_latest, win_rate_vs_previous_ci=[low, high] if summary.games_vs_latest else None,
        elo=summary.elo, admitted=admitted,
    )
    if agent.name == CURRENT:
        fields["elo_by_policy"] = ray.get(ctx.league.ratings.remote())
        fields["bt_by_policy"] = ray.get(ctx.league.bradley_terry.remote(ctx.config.eval.bootstrap_samples))
    return fields


def pair_file(round_: int, agent: str, tag: str) -> str:
    """`round-00003.parquet`, `round-00003-adversarial.parquet`, `round-00003-main_exploiter.parquet`."""
    suffix = "" if agent == CURRENT else f"-{agent}"
    return f"round-{round_:05d}{suffix}" + (f"-{tag}" if tag else "") + ".parquet"
