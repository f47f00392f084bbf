"""Tic-tac-toe in a short notation for a character-level model: `T` and the nine cells row by
row (`x`, `o` or `.`), then the mark to play and `>`: `Tx...o....x>`. The action is a cell's
number, 1 to 9. Seat 0 plays `x`. A seed opens the game with that many random moves modulo
`random_opening + 1` (0 by default: the empty board), so episodes can start apart.

The expert plays perfectly (minimax over every position, cached), taking the first best cell.
"""
from __future__ import annotations

from functools import cache
from typing import Literal

import numpy as np
from pydantic import Field

from envs.base import Ending, EnvError, EnvOptions, environment

LINES = [(0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8), (0, 4, 8), (2, 4, 6)]
MARKS = "xo"


@environment
class TicTacToeOptions(EnvOptions):
    name: Literal["tictactoe"] = "tictactoe"
    random_opening: int = Field(0, ge=0, le=4, description="up to this many random moves open each game (by its seed)")

    def make(self) -> TicTacToe:
        return TicTacToe(self)


def winner_of(board: str) -> str | None:
    for a, b, c in LINES:
        if board[a] != "." and board[a] == board[b] == board[c]:
            return board[a]
    return None


@cache
def value(board: str, mark: str) -> int:
    """The game's value for `mark` to move: 1 a win, 0 a draw, -1 a loss, with perfect play."""
    other = MARKS[1 - MARKS.index(mark)]
    if winner_of(board) is not None:
        return -1  # the previous player (the other mark) just won
    empty = [i for i, c in enumerate(board) if c == "."]
    if not empty:
        return 0
    return max(-value(board[:i] + mark + board[i + 1 :], other) for i in empty)


class TicTacToe(Ending):
    def __init__(self, options: TicTacToeOptions) -> None:
        self.options = options
        self.board = "." * 9

    def reset(self, seed: int) -> None:
        self.board = "." * 9
        self._begin()
        rng = np.random.default_rng(seed)
        for _ in range(seed % (self.options.random_opening + 1)):
            self.step(self.legal_actions()[int(rng.integers(len(self.legal_actions())))])
        if self.done:  # an opening never ends a game (at most four moves), but stay safe
            raise EnvError(f"seed {seed}'s opening ended the game")

    @property
    def turn(self) -> int:
        return (9 - self.board.count(".")) % 2  # moves made so far, x first

    def observation(self, player: int) -> str:
        return f"T{self.board}{MARKS[self.turn]}>"

    def legal_actions(self) -> list[str]:
        return [str(i + 1) for i, c in enumerate(self.board) if c == "."]

    def step(self, action: str) -> bool:
        if self.done:
            raise EnvError("the episode is over; reset it")
        mover = self.turn
        if action.strip() not in self.legal_actions():
            self._end(1 - mover, f"invalid move {action.strip()[:20]!r} by player {mover}")
            return False
        cell = int(action.strip()) - 1
        self.board = self.board[:cell] + MARKS[mover] + self.board[cell + 1 :]
        if winner_of(self.board):
            self._end(mover, f"player {mover} made three in a row")
        elif "." not in self.board:
            self._end(None, "board full")
        return True

    def expert(self) -> str:
        mark, other = MARKS[self.turn], MARKS[1 - self.turn]
        best = max(self.legal_actions(), key=lambda a: -value(self.board[: int(a) - 1] + mark + self.board[int(a) :], other))
        return best
