"""The one record every package shares: a prompt and what judges the answers to it.

Judges, the league, the learner and the driver import this module and nothing else of
`tasks/`, so a new task never touches them: it only has to produce `Example`s.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Message = Mapping[str, str]  # {"role": "user", "content": "..."}, as chat templates take them
Prompt = str | Sequence[Message]


@dataclass(frozen=True)
class Example:
    """One prompt of a task.

    `prompt` is text or a list of chat messages; the run's renderer gives a chat model either
    through its chat template (text as one user turn) and a base model the text itself. `reference` is the answer a rule
    verifier checks against; `tests` is code that checks a program (the code judge); a prompt
    with neither is open-ended and needs a model judge. `fields` carries what else a task or a
    judge needs (a reasoning-gym entry, a system prompt, the source row).
    """

    prompt: Prompt
    reference: str | None = None
    tests: str | None = None
    id: str = ""  # left out: a stable hash of the prompt, so the same prompt has the same id in every run
    fields: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.id:
            text = self.prompt if isinstance(self.prompt, str) else json.dumps(list(map(dict, self.prompt)), sort_keys=True)
            object.__setattr__(self, "id", hashlib.blake2b(text.encode(), digest_size=8).hexdigest())

    @property
    def text(self) -> str:
        """The prompt as plain text, for judges that quote it (the LLM judge, the reward model):
        a chat prompt's user turns, joined."""
        if isinstance(self.prompt, str):
            return self.prompt
        return "\n\n".join(m["content"] for m in self.prompt if m.get("role", "user") == "user")

    @property
    def answer(self) -> str:
        """The reference answer; a verifier asked to check an example without one is a task error."""
        if self.reference is None:
            raise ValueError(f"example {self.id!r} has no reference answer; judge it with a model judge, not a verifier")
        return self.reference
