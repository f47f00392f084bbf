"""Iterative refinement: the learning agent answers, critiques its answer and answers again,
`rounds` times; each step is judged original (side a) against improved (side b).

Every step is kept as a trace in `traces/` (critique-and-revise data in its own right); the
pairs teach the policy which of its own two attempts was better, whichever way the revision went.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa
from pydantic import Field, model_validator

from cluster.section import RecipeSection
from games.base import Game, PlayContext, Played, Recorded, game
from judge.verdict import Verdict
from league.refinement import refinement_records

if TYPE_CHECKING:
    from cluster.agents import Agent


class RefinementOptions(RecipeSection):
    """Iterative refinement: the policy answers, critiques its answer, and answers again, `rounds` times.

    Templates are Python format strings over {prompt}, {response} and (refine only) {critique}.
    """

    prompts: int = Field(128, ge=1)
    rounds: int = Field(1, ge=1)
    critique_template: str = "{prompt}{response}?"
    refine_template: str = "{prompt}{response}?{critique}:{prompt}"

    @model_validator(mode="after")
    def _templates_fill(self) -> RefinementOptions:
        for name, template, fields in (
            ("critique_template", self.critique_template, {"prompt": "", "response": ""}),
            ("refine_template", self.refine_template, {"prompt": "", "response": "", "critique": ""}),
        ):
            try:
                template.format(**fields)
            except (KeyError, IndexError, ValueError) as err:
                allowed = ", ".join("{" + f + "}" for f in fields)
                raise ValueError(f"{name} {template!r} is not a format string over {allowed}: {err!r}") from None
        return self


@game
class Refinement(Game):
    name = "refinement"
    options = RefinementOptions
    tag = "refinement"
    folders = ("traces",)
    counted = "refinement_traces"

    def play(self, ctx: PlayContext, agent: Agent, round_: int, size: int | None = None) -> Played:
        """Fetches each step's short answers: the next step's prompts are built from them."""
        import ray

        r: RefinementOptions = ctx.config.refinement
        problems = ctx.task.train(size or r.prompts, ctx.rng)
        prompts = [ctx.render(p) for p in problems]
        current = ray.get(agent.generator.generate(prompts, ctx.sampling, ctx.seeds(len(prompts))))
        steps, verdicts = [], []
        for _ in range(r.rounds):
            asks = [r.critique_template.format(prompt=p, response=a) for p, a in zip(prompts, current)]
            critiques = ray.get(agent.generator.generate(asks, ctx.sampling, ctx.seeds(len(asks))))
            asks = [r.refine_template.format(prompt=p, response=a, critique=c) for p, a, c in zip(prompts, current, critiques)]
            improved = ray.get(agent.generator.generate(asks, ctx.sampling, ctx.seeds(len(asks))))
            steps.append((current, critiques, improved))
            verdicts.append(ctx.judges.judge(problems, current, improved))
            current = improved
        fields, pairs = ctx.league.record.options(num_returns=2).remote(self.name, round_, agent.name, agent.version, steps, prompts, verdicts)
        return Played(ray.get(fields), pairs)

    @staticmethod
    def record(round_: int, agent: str, version: int, steps: list[tuple[list[str], list[str], list[str]]], prompts: list[str],
               verdicts: list[list[Verdict]]) -> Recorded:
        """`steps[k]` holds (originals, critiques, improved) of step k+1 and `verdicts[k]` their judgements."""
        traces, pairs = [], []
        for k, ((originals, critiques, improved), judged) in enumerate(zip(steps, verdicts, strict=True)):
            t, p = refinement_records(round_, k + 1, prompts, originals, critiques, improved, judged)
            traces.append(t)
            pairs.append(p)
        table = pa.concat_tables(traces)
        better = sum(1 for w in table.column("winner").to_pylist() if w == "improved")
        return Recorded({"refinement_traces": table.num_rows, "refinement_improved": better}, pa.concat_tables(pairs), {"traces": table})
