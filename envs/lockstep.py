"""Many episodes played at once in lockstep: each turn, the observations of every running
episode go to the player to move, one batched request per player, all sent before any is
awaited (the policies' generators work side by side).

Episodes that wait on judges (a debate's last argument made) are judged together once each
turn, one call to the `jury` (the run's judge pool), and end on their verdicts.

A player is a `Mover`: given the episodes' environments, their rendered prompts and a seed
each, it starts choosing and returns a function that waits for the actions. A policy's mover
asks its generators (and reads only the prompts); a fixed opponent's reads the environments.
Plain Python, so a test plays it with scripted movers.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from envs.base import EnvError, TurnEnv
from judge.verdict import Verdict
from prompts.example import Example

Mover = Callable[[list[TurnEnv], list[str], list[int]], Callable[[], list[str]]]
Jury = Callable[[list[Example], list[str], list[str]], list[Verdict]]  # JudgePool.judge
MAX_TURNS = 10_000  # a guard against an environment that never ends


@dataclass(frozen=True)
class Turn:
    index: int
    seat: int
    player: str
    observation: str
    prompt: str  # the observation as the player's policy was asked it (its chat template)
    action: str
    valid: bool


@dataclass
class Episode:
    id: str
    seed: int
    players: tuple[str, str]  # who sits in seat 0 and seat 1
    versions: tuple[int, int]
    env: TurnEnv
    turns: list[Turn] = field(default_factory=list)


def play(episodes: list[Episode], movers: dict[str, Mover], render: Callable[[str], str], seeds: Callable[[int], list[int]],
         jury: Jury | None = None) -> None:
    """Play every episode (already reset) to its end."""
    for _ in range(MAX_TURNS):
        judge(episodes, jury)
        groups: dict[str, list[Episode]] = {}
        for e in episodes:
            if not e.env.done:
                groups.setdefault(e.players[e.env.turn], []).append(e)
        if not groups:
            return
        asked = {}
        for name, group in groups.items():
            observations = [e.env.observation(e.env.turn) for e in group]
            prompts = [render(o) for o in observations]
            asked[name] = observations, prompts, movers[name]([e.env for e in group], prompts, seeds(len(group)))
        for name, group in groups.items():
            observations, prompts, wait = asked[name]
            for e, observation, prompt, action in zip(group, observations, prompts, wait(), strict=True):
                seat = e.env.turn
                valid = e.env.step(action)
                e.turns.append(Turn(len(e.turns), seat, name, observation, prompt, action, valid))
    raise EnvError(f"episodes still running after {MAX_TURNS} turns; give the environment a turn limit")


def judge(episodes: list[Episode], jury: Jury | None) -> None:
    """Settle every episode waiting on judges, in one call to the jury."""
    waiting = [(e, m) for e in episodes if (m := e.env.awaiting()) is not None]
    if not waiting:
        return
    if jury is None:
        raise EnvError("this game is decided by judges and none were given: play it with the run's judge pool as the jury")
    verdicts = jury([m[0] for _, m in waiting], [m[1] for _, m in waiting], [m[2] for _, m in waiting])
    for (e, _), verdict in zip(waiting, verdicts, strict=True):
        e.env.settle(verdict)
