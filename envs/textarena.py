"""TextArena's two-player games (the `textarena` package) behind the `TurnEnv` interface: a recipe
names a textarena env id (`game: KuhnPoker-v0`) and the adapter plays it turn by turn.

Only games that run offline with two players are accepted (SUPPORTED); the recipe is refused when
read otherwise. Observations are textarena's own prompt-and-history text for the player to move;
actions pass through unchanged (textarena's wrappers add the square brackets a bare move lacks).
Invalid moves follow textarena's rules, not this project's: most games let the offender retry
once (`step` returns False and the same player moves again); a second invalid move in a row ends
the game, lost for the offender. `legal_actions` is read from the game's state (the moves its
observation offers, or a small set of always well-formed moves); see each `_legal_*` function.
There is no expert player.

Debate (`Debate-v0`) is played with the run's judge pool as its jury, not textarena's, which calls
an online service: on the last argument the episode waits (`awaiting`) with the topic and each
side's arguments as a matchup (the Affirmative as side a), the lockstep player judges every
waiting debate in one call, and textarena then decides the debate from the jury's votes by its
own rule (the side that gained more support wins). Our judges compare arguments, so they cast no
vote before the debate: the pre-debate votes are an even split, and the post-debate votes go to
the verdict's winner (split evenly on a tie).

textarena is imported lazily: importing it takes seconds, and this module is imported whenever a
recipe is read.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Literal

from pydantic import model_validator

from envs.base import DRAW, LOSS, WIN, Ending, EnvError, EnvOptions, Matchup, environment
from judge.verdict import SCORE_OF_WINNER, Verdict
from prompts.example import Example

GameState = dict[str, Any]


def _legal_tictactoe(state: GameState, player: int) -> list[str]:
    """The empty cells, as the observation's 'Available Moves' lists them: `[4]`."""
    return [f"[{r * 3 + c}]" for r, row in enumerate(state["board"]) for c, cell in enumerate(row) if cell == ""]


def _legal_connect_four(state: GameState, player: int) -> list[str]:
    """The columns that are not full: `[col 3]`."""
    return [f"[col {c}]" for c, cell in enumerate(state["board"][0]) if cell == "."]


def _legal_kuhn_poker(state: GameState, player: int) -> list[str]:
    """The actions the betting tree allows now (the observation's 'available actions'): `[check]`, `[bet]`..."""
    tree = state["current_legal_action_tree"]
    return [f"[{move}]" for move in tree] if isinstance(tree, dict) else []


def _legal_nim(state: GameState, player: int) -> list[str]:
    """Every removal `[pile quantity]` from a pile that has that many."""
    return [f"[{p} {q}]" for p, size in enumerate(state["piles"]) for q in range(1, size + 1)]


def _legal_liars_dice(state: GameState, player: int) -> list[str]:
    """A small valid set: one more of the bid face (at least face 1), the next face at the same
    quantity, and a call once there is a bid (a call without one, or a quantity-0 bid, is invalid)."""
    quantity, face = state["current_bid"]["quantity"], state["current_bid"]["face_value"]
    moves = [f"[Bid: {quantity + 1}, {max(face, 1)}]"]
    if quantity >= 1 and face < 6:
        moves.append(f"[Bid: {quantity}, {face + 1}]")
    if quantity >= 1 and state["last_bidder_id"] is not None:
        moves.append("[Call]")
    return moves


RESOURCES = ["Wheat", "Wood", "Sheep", "Brick", "Ore"]


def _legal_negotiation(state: GameState, player: int) -> list[str]:
    """`[Deny]` (always valid), `[Accept]` when an offer to this player is pending and it holds what
    is asked, and a one-for-one offer of each resource it holds (an offer of what it lacks is invalid)."""
    held = state["player_resources"][player]
    moves = ["[Deny]"]
    offer = state["current_offer"]
    if offer and offer["to_player"] == player and all(held.get(r, 0) >= n for r, n in offer["requested_resources"].items()):
        moves.append("[Accept]")
    for i, resource in enumerate(RESOURCES):
        if held.get(resource, 0) >= 1:
            moves.append(f"[Offer: 1 {resource} -> 1 {RESOURCES[(i + 1) % len(RESOURCES)]}]")
    return moves


def _legal_prisoners_dilemma(state: GameState, player: int) -> list[str]:
    """The two decisions; in the conversation phase any text is valid, so they are valid there too."""
    return ["[Cooperate]", "[Defect]"]


def _legal_truth_and_deception(state: GameState, player: int) -> list[str]:
    """The guesser's two answers; during the conversation any text is valid, so they are too."""
    return ["[Fact 1]", "[Fact 2]"]


def _legal_debate(state: GameState, player: int) -> list[str]:
    """Any text is an argument; these are always well-formed ones (what the random player says)."""
    side = state["sides"][player]
    return [f"The {side} case is stronger on the evidence.", f"My opponent's points do not hold; the {side} side stands.",
            f"Consider the consequences: they favour the {side}."]


# The offline two-player games this adapter has been played through (tests/test_textarena.py).
SUPPORTED: dict[str, Callable[[GameState, int], list[str]]] = {
    "TicTacToe-v0": _legal_tictactoe,
    "ConnectFour-v0": _legal_connect_four,
    "KuhnPoker-v0": _legal_kuhn_poker,
    "Nim-v0": _legal_nim,
    "LiarsDice-v0": _legal_liars_dice,
    "SimpleNegotiation-v0": _legal_negotiation,
    "IteratedPrisonersDilemma-v0": _legal_prisoners_dilemma,
    "TruthAndDeception-v0": _legal_truth_and_deception,
    "Debate-v0": _legal_debate,
}
JUDGED = {"Debate-v0": 6}  # decided by the run's judge pool as the jury, after this many arguments


@environment
class TextArenaOptions(EnvOptions):
    name: Literal["textarena"] = "textarena"
    game: str = "TicTacToe-v0"
    has_expert: ClassVar[bool] = False

    @model_validator(mode="after")
    def _supported(self) -> TextArenaOptions:
        """Refuse, when the recipe is read, a game that would fail only once played."""
        if self.game in JUDGED and self.max_turns < JUDGED[self.game]:
            raise ValueError(f"{self.game} ends after {JUDGED[self.game]} arguments: max_turns {self.max_turns} would stop every "
                             f"debate before its jury votes (a draw); give max_turns >= {JUDGED[self.game]}")
        if self.game in SUPPORTED:
            return self
        raise ValueError(f"textarena game {self.game!r} is not supported; supported: {', '.join(sorted(SUPPORTED))}")

    @property
    def label(self) -> str:
        return self.game

    @property
    def judged(self) -> bool:
        return self.game in JUDGED

    def make(self) -> TextArenaEnv:
        return TextArenaEnv(self)


def seat_rewards(rewards: dict[int, float] | None) -> tuple[float, float]:
    """textarena's rewards (any scale) as a win, loss or draw per seat: the higher reward wins."""
    if not rewards or rewards.get(0) == rewards.get(1):
        return (DRAW, DRAW)
    return (WIN, LOSS) if rewards.get(0, 0) > rewards.get(1, 0) else (LOSS, WIN)


class VerdictJury:
    """textarena's jury interface (`evaluate(context)` -> votes per option), answered from the
    verdict `TextArenaEnv.settle` hands it; before the debate, an even split."""

    def __init__(self, jury_size: int, options: list[str]) -> None:
        self.size, self.options = jury_size, options
        self.verdict: Verdict | None = None

    def evaluate(self, context: str) -> dict[str, float]:
        if self.verdict is None:
            return {option: self.size / len(self.options) for option in self.options}
        affirmative = self.size * SCORE_OF_WINNER[self.verdict.winner]  # the Affirmative is side a
        return {self.options[0]: affirmative, self.options[1]: self.size - affirmative}


class TextArenaEnv(Ending):
    """One textarena game; caches the observation because textarena hands each one out only once."""

    def __init__(self, options: TextArenaOptions) -> None:
        self.options = options
        self.game: Any = None
        self._turn, self._text, self.turns = 0, "", 0
        self.jury: VerdictJury | None = None
        self._closing: str | None = None  # a debate's last argument, held until the judges decide

    def reset(self, seed: int) -> None:
        import textarena as ta  # slow to import (seconds): only when a game is played

        if self.options.judged:
            self.game = ta.make(self.options.game, jury_class=self._new_jury)
        else:
            self.game = ta.make(self.options.game)
        self.game.reset(num_players=2, seed=seed)
        self.turns, self._closing = 0, None
        self._begin()
        self._observe()

    def _new_jury(self, jury_size: int, options: list[str]) -> VerdictJury:
        self.jury = VerdictJury(jury_size, options)
        return self.jury

    def _observe(self) -> None:
        """Take the player to move and its text from textarena (which it clears once read)."""
        self._turn, text = self.game.get_observation()
        self._text = text if isinstance(text, str) else str(text)

    @property
    def turn(self) -> int:
        return int(self._turn)

    def observation(self, player: int) -> str:
        if player != self._turn:
            raise EnvError(f"player {player} asked for an observation; player {self._turn} is to move")
        return self._text

    def legal_actions(self) -> list[str]:
        if self.done or self.game is None:
            return []
        return SUPPORTED[self.options.game](self.game.state.game_state, self.turn)

    def step(self, action: str) -> bool:
        """Play `action`; False when textarena found it invalid (then it lets the player retry, or
        the game is over and lost for the offender)."""
        if self.done or self.game is None or self._closing is not None:
            raise EnvError("the episode is over (or waits on its judges); reset it")
        mover, state = self.turn, self.game.state
        if self.options.judged and state.turn >= state.max_turns - 1:
            self._closing = action  # the debate's last argument: it is played once the judges decide
            return True
        turn_before = state.turn
        done, _info = self.game.step(action)
        self.turns += 1
        # textarena counts a turn only for a valid move, and marks the offender when one ends the game
        valid = state.turn != turn_before and not state.game_info[mover].get("invalid_move", False)
        if done:
            self._finish()
        elif self.turns >= self.options.max_turns:
            self.game.close()
            self._end(None, "turn limit")
        else:
            self._observe()
        return valid

    def awaiting(self) -> Matchup | None:
        """A debate's topic and each side's arguments (the last one included), Affirmative as side a."""
        if self._closing is None or self.done:
            return None
        state = self.game.state.game_state
        arguments = {p: list(a) for p, a in state["arguments"].items()}
        arguments[self.turn].append(self._closing)
        by_side = {side: "\n".join(arguments[p]) for p, side in state["sides"].items()}
        problem = Example(f"Debate topic: {state['topic']}\nWhich side argued its case better?")
        return problem, by_side["Affirmative"], by_side["Negative"]

    def settle(self, verdict: Verdict) -> None:
        """Play the held last argument; textarena's jury (ours) votes by `verdict`."""
        if self._closing is None or self.jury is None:
            raise EnvError("this episode is not waiting on judges")
        self.jury.verdict = verdict
        done, _info = self.game.step(self._closing)
        self.turns += 1
        self._closing = None
        if not done:
            raise EnvError(f"the debate went on after its last argument (textarena {self.options.game})")
        self._finish()

    def _finish(self) -> None:
        """Close the game and keep its rewards and reason (0.7 returns both; 0.6 only the rewards)."""
        closed = self.game.close()
        rewards, info = closed if isinstance(closed, tuple) else (closed, self.game.state.game_info)
        self._rewards = seat_rewards(rewards)
        reasons = [str(v["reason"]) for v in (info or {}).values() if isinstance(v, dict) and v.get("reason")]
        self._reason = reasons[0] if reasons else "game over"

    def expert(self) -> str | None:
        return None
