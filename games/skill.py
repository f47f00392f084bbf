"""Skill-conditioned play: every prompt under every skill tag, each pair of levels judged with
the higher as side a; the pairs teach each tag its level (see league/skill.py).

The tags are special tokens added before the warm-up, and half the warm-up prompts carry a
random one, so every tag starts out meaning "answer as usual" and self-play gives it its level.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field, model_validator

from cluster.section import RecipeSection
from games.base import Game, PlayContext, Played, Recorded, game
from judge.verdict import Verdict
from league.skill import skill_records

if TYPE_CHECKING:
    from cluster.agents import Agent


class SkillOptions(RecipeSection):
    """Skill-conditioned play: `levels` from lowest to highest, added to the tokenizer as special
    tokens and put before the prompt; every pair of levels plays on the same `prompts` prompts."""

    levels: list[str] = Field(["<novice>", "<intermediate>", "<expert>"], min_length=2)
    prompts: int = Field(128, ge=1)

    @model_validator(mode="after")
    def _distinct(self) -> SkillOptions:
        if len(set(self.levels)) != len(self.levels):
            raise ValueError(f"levels {self.levels} repeat a tag; each level needs its own token")
        return self


@game
class Skill(Game):
    name = "skill"
    options = SkillOptions
    tag = "skill"
    folders = ("skill_games",)
    counted = "skill_games"

    def play(self, ctx: PlayContext, agent: Agent, round_: int, size: int | None = None) -> Played:
        import ray

        s: SkillOptions = ctx.config.skill
        problems = ctx.task.train(size or s.prompts, ctx.rng)
        prompts = [ctx.render(p) for p in problems]
        tagged = [level + p for level in s.levels for p in prompts]
        flat = ray.get(agent.generator.generate(tagged, ctx.sampling, ctx.seeds(len(tagged))))
        responses = {level: flat[k * len(prompts) : (k + 1) * len(prompts)] for k, level in enumerate(s.levels)}
        matchups = [(high, low) for h, high in enumerate(s.levels) for low in s.levels[:h]]
        verdicts = [ctx.judges.judge(problems, responses[high], responses[low]) for high, low in matchups]
        fields, pairs = ctx.league.record.options(num_returns=2).remote(
            self.name, round_, agent.name, agent.version, prompts, matchups, responses, verdicts
        )
        return Played(ray.get(fields), pairs)

    @staticmethod
    def record(round_: int, agent: str, version: int, prompts: list[str], matchups: list[tuple[str, str]],
               responses: dict[str, list[str]], verdicts: list[list[Verdict]]) -> Recorded:
        games, pairs, rates = skill_records(round_, prompts, matchups, responses, verdicts)
        return Recorded({"skill_win_rates": rates, "skill_games": games.num_rows}, pairs, {"skill_games": games})

    def special_tokens(self, config: Any) -> list[str]:
        return list(config.skill.levels)

    def warm_up_prompt(self, config: Any, prompt: str, rng: np.random.Generator) -> str:
        levels = config.skill.levels
        if rng.random() < 0.5:
            return prompt
        return levels[int(rng.integers(len(levels)))] + prompt
