"""Adversarial filtering: many samples per prompt from the learning agent, each scored; a
prompt whose samples spread widely is a failure mode, and its best and worst samples a pair.

The failure set is kept in `failures/` for inspection and targeted evaluation.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from cluster.section import RecipeSection
from games.base import Game, PlayContext, Played, Recorded, game
from league.adversarial import filter_failures

if TYPE_CHECKING:
    from cluster.agents import Agent


class AdversarialOptions(RecipeSection):
    """Adversarial filtering: `samples` answers to each of `prompts` prompts per iteration."""

    prompts: int = Field(128, ge=1)
    samples: int = Field(10, ge=2)
    spread_threshold: float = Field(0.5, ge=0, description="a prompt whose best-minus-worst score exceeds this is a failure")


@game
class Adversarial(Game):
    name = "adversarial"
    options = AdversarialOptions
    tag = "adversarial"
    folders = ("failures",)
    counted = "adversarial_prompts"

    def play(self, ctx: PlayContext, agent: Agent, round_: int, size: int | None = None) -> Played:
        import ray

        a: AdversarialOptions = ctx.config.adversarial
        problems = ctx.task.train(size or a.prompts, ctx.rng)
        repeated = [p for p in problems for _ in range(a.samples)]
        responses = agent.generator.generate([ctx.render(p) for p in repeated], ctx.sampling, ctx.seeds(len(repeated)))
        scores = ctx.judges.score(repeated, responses)
        fields, pairs = ctx.league.record.options(num_returns=2).remote(
            self.name, round_, agent.name, agent.version, [ctx.render(p) for p in problems], responses, scores, a.spread_threshold
        )
        return Played(ray.get(fields), pairs)

    @staticmethod
    def record(round_: int, agent: str, version: int, prompts: list[str], responses: list[str], scores: list[float],
               threshold: float) -> Recorded:
        """`responses` and `scores` hold the samples of each prompt in turn."""
        n = len(responses) // len(prompts)
        grouped = [responses[i * n : (i + 1) * n] for i in range(len(prompts))]
        marks = [scores[i * n : (i + 1) * n] for i in range(len(prompts))]
        failures, pairs = filter_failures(round_, prompts, grouped, marks, threshold)
        return Recorded({"failures": failures.num_rows, "adversarial_prompts": len(prompts)}, pairs, {"failures": failures})
