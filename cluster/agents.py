"""The learning agents of a run: the current policy and, with league roles, the exploiters.

Each agent is a learner actor and a generator pool serving its latest weights. Games between
agents are live play: an opponent's answers come from its own generators, a snapshot's from
the snapshot generators; `actors.pool.interleave` puts them back in the games' order in
the object store, so the texts still go from generators to judges and league without the driver.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Agent:
    name: str  # its name in the league: `current` for the main agent
    role: str  # main, main_exploiter or league_exploiter (league/roles.py)
    learner: Any  # learner actor handle
    generator: Any  # its GeneratorPool (actors/pool.py), serving `version`
    version: int = 0


def split_by_player(opponents: list[str], live: set[str]) -> dict[str | None, list[int]]:
    """Game indices by who answers them: a live agent's name, or None for the snapshot generator."""
    groups: dict[str | None, list[int]] = {}
    for i, name in enumerate(opponents):
        groups.setdefault(name if name in live else None, []).append(i)
    return groups
