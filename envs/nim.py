"""Nim: heaps of stones; a move takes 1 to `max_take` stones from one heap; whoever takes the
last stone wins. Written compactly for a character-level model: `N7>` is one heap of seven,
`N3 4 5>` three heaps; the action is the number taken (`2`), or with several heaps the heap's
number and then the count (`23`: three from heap 2).

The expert plays the Sprague-Grundy strategy: a heap of n has value n mod (max_take + 1), and a
position whose values XOR to zero is lost for the player to move.
"""
from __future__ import annotations

import re
from functools import reduce
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from envs.base import Ending, EnvError, EnvOptions, environment


@environment
class NimOptions(EnvOptions):
    name: Literal["nim"] = "nim"
    heaps: int = Field(1, ge=1, le=9)
    low: int = Field(5, ge=1, description="the fewest stones a heap starts with")
    high: int = Field(15, ge=1, le=99, description="the most stones a heap starts with")
    max_take: int = Field(3, ge=1, le=9)

    @model_validator(mode="after")
    def _range(self) -> NimOptions:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) is more than high ({self.high})")
        return self

    def make(self) -> Nim:
        return Nim(self)


class Nim(Ending):
    def __init__(self, options: NimOptions) -> None:
        self.options = options
        self.stones: list[int] = []
        self._turn, self.turns = 0, 0

    def reset(self, seed: int) -> None:
        o = self.options
        self.stones = [int(n) for n in np.random.default_rng(seed).integers(o.low, o.high + 1, size=o.heaps)]
        self._turn, self.turns = 0, 0
        self._begin()

    @property
    def turn(self) -> int:
        return self._turn

    def observation(self, player: int) -> str:
        return "N" + " ".join(str(n) for n in self.stones) + ">"

    def legal_actions(self) -> list[str]:
        single = len(self.stones) == 1
        return [
            str(k) if single else f"{h + 1}{k}"
            for h, n in enumerate(self.stones) for k in range(1, min(n, self.options.max_take) + 1)
        ]

    def step(self, action: str) -> bool:
        if self.done:
            raise EnvError("the episode is over; reset it")
        move = self._parse(action.strip())
        if move is None:
            self._end(winner=1 - self._turn, reason=f"invalid move {action.strip()[:20]!r} by player {self._turn}")
            return False
        heap, take = move
        self.stones[heap] -= take
        self.turns += 1
        if not any(self.stones):
            self._end(winner=self._turn, reason=f"player {self._turn} took the last stone")
        elif self.turns >= self.options.max_turns:
            self._end(winner=None, reason="turn limit")
        self._turn = 1 - self._turn
        return True

    def _parse(self, action: str) -> tuple[int, int] | None:
        single = len(self.stones) == 1
        m = re.fullmatch(r"(\d)" if single else r"(\d)(\d)", action)
        if m is None:
            return None
        heap, take = (0, int(m.group(1))) if single else (int(m.group(1)) - 1, int(m.group(2)))
        if not 0 <= heap < len(self.stones) or not 1 <= take <= min(self.stones[heap], self.options.max_take):
            return None
        return heap, take

    def expert(self) -> str:
        period = self.options.max_take + 1
        values = [n % period for n in self.stones]
        total = reduce(lambda a, b: a ^ b, values, 0)
        single = len(self.stones) == 1
        for h, n in enumerate(self.stones):
            for k in range(1, min(n, self.options.max_take) + 1):
                if total ^ values[h] ^ ((n - k) % period) == 0:
                    return str(k) if single else f"{h + 1}{k}"
        return self.legal_actions()[0]  # a lost position: any move
