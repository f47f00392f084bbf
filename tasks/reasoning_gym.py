"""Procedural, verifiable prompts from the `reasoning-gym` package (its task families:
arithmetic, gsm_symbolic, logic, games, graphs...), generated offline from a seed and scored
by the family's own `score_answer`, so the metric is exactly the package's.

An optional extra (`pip install selfplay[reasoning-gym]`): the package pulls in matplotlib,
pycosat and others that no other task needs, so it is imported only when this kind is used.
"""
from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from prompts.example import Example
from tasks.base import TaskError, TaskOptions, task_kind


@task_kind
class ReasoningGymOptions(TaskOptions):
    """Items `0 .. size-1` of the family `name` (seeded with the run's seed) are the training
    pool; `held_out_size` further items are the held-out split, and a training draw whose
    question is also held out is drawn again. The answer is read from the last
    `<answer_tag>...</answer_tag>` of the response (the whole response when there is none) and
    scored by the family's `score_answer` (in [0, 1]; partial credit where the family gives it)."""

    kind: Literal["reasoning_gym"] = "reasoning_gym"
    name: str = Field(description="a reasoning-gym family, e.g. chain_sum, basic_arithmetic, gsm_symbolic, countdown")
    config: dict[str, Any] = Field(default_factory=dict, description="the family's own config fields (its *Config dataclass)")
    size: int = Field(10_000, ge=1, description="training items")
    held_out_size: int = Field(128, ge=1)
    system_prompt: str | None = Field(
        "direct", description="a key of reasoning_gym.utils.SYSTEM_PROMPTS (direct, simple, default, DeepSeekZero, "
        "chain_of_draft), any other text as the system turn itself, or none",
    )
    answer_tag: str | None = Field("answer", description="the tag the answer is read from; none scores the whole response")

    @model_validator(mode="after")
    def _family_builds(self) -> ReasoningGymOptions:
        try:
            ReasoningGymTask(self, 0).held_out()  # unknown family or config field, or a family that cannot generate
        except TaskError as err:
            raise ValueError(str(err)) from None
        return self

    def build(self, seed: int) -> ReasoningGymTask:
        return ReasoningGymTask(self, seed)


def _package() -> Any:
    try:
        import reasoning_gym
    except ImportError:
        raise TaskError(
            "task kind reasoning_gym needs the reasoning-gym package: pip install 'selfplay[reasoning-gym]' "
            "(or reasoning-gym==0.1.25)"
        ) from None
    return reasoning_gym


class ReasoningGymTask:
    name = "reasoning_gym"
    open_ended = False

    def __init__(self, options: ReasoningGymOptions, seed: int) -> None:
        rg = _package()
        from reasoning_gym.factory import DATASETS

        if options.name not in DATASETS:
            raise TaskError(f"reasoning_gym has no family {options.name!r}; some it has: {', '.join(sorted(DATASETS)[:12])}, ...")
        self.options = options
        try:
            self.dataset = rg.create_dataset(options.name, **options.config, seed=seed, size=options.size + options.held_out_size)
        except (TypeError, ValueError, AssertionError) as err:
            raise TaskError(f"reasoning_gym family {options.name!r} refused config {options.config}: {err}") from None
        self._system = self._system_turn()
        self._items: dict[int, Example] = {}
        self._held = [self._example(options.size + i) for i in range(options.held_out_size)]
        self._held_questions = {e.fields["entry"]["question"] for e in self._held}

    def _system_turn(self) -> str | None:
        from reasoning_gym.utils import SYSTEM_PROMPTS

        prompt = self.options.system_prompt
        return SYSTEM_PROMPTS.get(prompt, prompt) if prompt else None

    def _example(self, index: int) -> Example:
        if index not in self._items:
            entry = self.dataset[index]
            turns = [{"role": "user", "content": entry["question"]}]
            prompt = [{"role": "system", "content": self._system}, *turns] if self._system else turns
            answer = entry.get("answer")
            self._items[index] = Example(prompt, None if answer is None else str(answer), id=f"{self.options.name}/{index}",
                                         fields={"entry": entry})
        return self._items[index]

    def train(self, n: int, rng: np.random.Generator) -> list[Example]:
        out: list[Example] = []
        for _ in range(100 * n):
            if len(out) == n:
                return out
            example = self._example(int(rng.integers(self.options.size)))
            if example.fields["entry"]["question"] not in self._held_questions:
                out.append(example)
        raise TaskError(f"reasoning_gym family {self.options.name!r}: almost every training question is also held out; "
                        "raise its config's range or lower held_out_size")

    def held_out(self) -> list[Example]:
        return list(self._held)

    def sft(self, n: int, rng: np.random.Generator) -> list[Example]:
        examples = self.train(n, rng)
        if any(e.reference is None for e in examples):
            raise TaskError(f"reasoning_gym family {self.options.name!r} gives no reference answer to warm up on; set sft.steps: 0")
        return [self._with_tags(e) for e in examples]

    def _with_tags(self, example: Example) -> Example:
        """The warm-up's target in the form the score reads: the reference inside the answer tag."""
        tag = self.options.answer_tag
        return example if tag is None else Example(example.prompt, f"<{tag}>{example.reference}</{tag}>", id=example.id,
                                                   fields=example.fields)

    def score(self, example: Example, response: str) -> float:
        return float(self.dataset.score_answer(self.answer_of(response), example.fields["entry"]))

    def answer_of(self, response: str) -> str:
        from reasoning_gym.utils import extract_answer

        if self.options.answer_tag is None:
            return response.strip()
        found = extract_answer(response, self.options.answer_tag)
        return response.strip() if found is None else found
