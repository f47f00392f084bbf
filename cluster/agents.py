"""The learning agents of a run: the current policy and, with league roles, the exploiters.

Each agent is a learner actor and a generator actor serving its latest weights. Games between
agents are live play: an opponent's answers come from its own generator, a snapshot's from
the shared snapshot generator; `interleave` puts them back in the games' order in the object
store, so the texts still go from generators to judges and league without the driver.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ray


@dataclass
class Agent:
    name: str  # its name in the league: `current` for the main agent
    role: str  # main, main_exploiter or league_exploiter (league/roles.py)
    learner: Any  # learner actor handle
    generator: Any  # generator actor handle, serving `version`
    version: int = 0


@ray.remote(num_cpus=0)
def interleave(index_lists: list[list[int]], *parts: list[str]) -> list[str]:
    """Texts answered by several generators, back in game order: `parts[k][j]` is game `index_lists[k][j]`."""
    out = [""] * sum(len(idx) for idx in index_lists)
    for idx, texts in zip(index_lists, parts, strict=True):
        for i, text in zip(idx, texts, strict=True):
            out[i] = text
    return out


def split_by_player(opponents: list[str], live: set[str]) -> dict[str | None, list[int]]:
    """Game indices by who answers them: a live agent's name, or None for the snapshot generator."""
    groups: dict[str | None, list[int]] = {}
    for i, name in enumerate(opponents):
        groups.setdefault(name if name in live else None, []).append(i)
    return groups
