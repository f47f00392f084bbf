"""Adversarial Taboo, in the rules of SPAG (Cheng et al., "Self-playing Adversarial Language Game
Enhances LLM Reasoning", 2024): the attacker (seat 0, who speaks first) knows a target word and
must lead the defender (seat 1) to say it; the defender does not know it and must not say it,
but may guess it once, in the form `I know the word! It is "<word>"!`.

- The defender says the target word outside a guess: the attacker wins.
- The attacker says the target word, or the guess phrase (only the defender guesses): the attacker loses.
- The defender guesses (an utterance with `I know the word`): right when the target word follows
  the phrase, as SPAG reads it (`It's apple!`, `it is an apple`), and the defender wins; wrong, the
  attacker wins. One guess ends the game.
- Nobody has won after `turns_each` utterances each (five in SPAG): a draw.

The word counts as said in any of its simple inflections (`apple`, `apples`; `city`, `cities`;
`dance`, `danced`, `dancing`), as whole words and ignoring case. Judged by these rules alone, no judges. The target
words come from `words` (a text file, one word a line, `#` comments), by default the list shipped
beside this module (envs/taboo_words.txt). Any text is a valid utterance; the random player's
moves (`legal_actions`) name other words of the list, and its guesses are wrong but for luck.
"""
from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator

from envs.base import Ending, EnvError, EnvOptions, environment

SHIPPED_WORDS = Path(__file__).with_name("taboo_words.txt")
GUESS = re.compile(r"i know the word", re.IGNORECASE)
ATTACKER, DEFENDER = 0, 1


@cache
def read_words(path: Path) -> tuple[str, ...]:
    words = [line.strip().lower() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    bad = [w for w in words if not re.fullmatch(r"[a-z][a-z'-]*", w)]
    if bad or len(words) < 2:
        raise EnvError(f"taboo word list {str(path)!r}: {'needs at least two words' if not bad else f'not single words: {bad[:3]}'}; "
                       "give one lowercase word a line")
    return tuple(dict.fromkeys(words))


@environment
class TabooOptions(EnvOptions):
    name: Literal["taboo"] = "taboo"
    turns_each: int = Field(5, ge=1, description="utterances each before the game is a draw (SPAG: 5)")
    words: Path = Field(SHIPPED_WORDS, description="the target words, one a line")
    has_expert: ClassVar[bool] = False

    @field_validator("words")
    @classmethod
    def _readable(cls, path: Path) -> Path:
        if not path.is_file():
            raise ValueError(f"word list {str(path)!r} is not a file; give a text file with one word a line")
        read_words(path)
        return path

    @property
    def any_text(self) -> bool:
        return True

    def make(self) -> Taboo:
        return Taboo(self)


def says(text: str, word: str) -> bool:
    """Whether `text` contains `word` or a simple inflection of it, as a whole word."""
    stem = word[:-1] if word.endswith(("e", "y")) else word
    pattern = rf"\b(?:{re.escape(word)}(?:s|es|d|ed)?|{re.escape(stem)}(?:ing|ed|ies))\b"
    return re.search(pattern, text, re.IGNORECASE) is not None


class Taboo(Ending):
    def __init__(self, options: TabooOptions) -> None:
        self.options = options
        self.words = read_words(options.words)
        self.target = ""
        self.history: list[tuple[int, str]] = []
        self.rng = np.random.default_rng(0)

    def reset(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.target = self.words[int(self.rng.integers(len(self.words)))]
        self.history = []
        self._begin()

    @property
    def turn(self) -> int:
        return len(self.history) % 2

    def observation(self, player: int) -> str:
        if player != self.turn:
            raise EnvError(f"player {player} asked for an observation; player {self.turn} is to move")
        if player == ATTACKER:
            role = (f"You are the attacker. The secret word is \"{self.target}\". Lead the defender to say it without saying "
                    "it yourself.")
        else:
            role = ("You are the defender. The attacker knows a secret word and wants you to say it. Do not say it; once you "
                    "know it, guess once: I know the word! It is \"<word>\"! A wrong guess loses.")
        lines = [f"{'Attacker' if p == ATTACKER else 'Defender'}: {text}" for p, text in self.history]
        left = self.options.turns_each - len(self.history) // 2
        return "\n".join([f"Adversarial Taboo. {role} {left} turns each remain.", *lines, "Your turn:"])

    def legal_actions(self) -> list[str]:
        if self.done:
            return []
        others = [w for w in self.words if w != self.target]
        picks = [others[int(i)] for i in self.rng.choice(len(others), size=3, replace=False)]
        if self.turn == ATTACKER:
            return [f"Think of something like a {picks[0]}.", f"It is not a {picks[1]}.", f"Where would you find a {picks[2]}?"]
        return [f"Is it a kind of {picks[0]}?", f"Tell me more about the {picks[1]}.", f'I know the word! It is "{picks[2]}"!']

    def step(self, action: str) -> bool:
        """Play an utterance (always valid) and apply the rules above."""
        if self.done:
            raise EnvError("the episode is over; reset it")
        player = self.turn
        self.history.append((player, action))
        guess = GUESS.search(action)
        if guess and player == ATTACKER:
            self._end(DEFENDER, "the attacker used the guess phrase")
        elif guess:
            right = says(action[guess.end():], self.target)
            self._end(DEFENDER if right else ATTACKER, f"the defender guessed {'right' if right else 'wrong'}")
        elif says(action, self.target):
            self._end(1 - player, f"the {('attacker', 'defender')[player]} said the word")
        elif len(self.history) >= 2 * self.options.turns_each:
            self._end(None, "no winner after the turns")
        return True

    def expert(self) -> str | None:
        return None
