"""Head-to-head: a learning agent and matchmade opponents answer the same prompts, the judge
picks the better answer, the league rates the result, and each decisive game gives a pair.

Opponents are snapshots (served by the snapshot generators) or, with league roles, other
learning agents (served by their own generators: live play). The agent's snapshot joins the
league when the admission rule says it earned it.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from games.base import Game, PlayContext, Played, Recorded, game, settle
from judge.verdict import SCORE_OF_WINNER, Verdict, truncation_loses
from league.league import GameResult
from league.records import games_table, pairs_from_games

if TYPE_CHECKING:
    from cluster.agents import Agent


@game
class HeadToHead(Game):
    name = "head_to_head"
    tag = ""
    folders = ("games",)
    counted = "games"
    matchmade = True

    def play(self, ctx: PlayContext, agent: Agent, round_: int, size: int | None = None) -> Played:
        """`size` games (`self_play.games_per_iteration` by default), judged, recorded and rated;
        the agent's snapshot admitted if it earned it."""
        import ray

        start = time.perf_counter()
        n = size or ctx.config.self_play.games_per_iteration
        problems = ctx.task.train(n, ctx.rng)
        prompts = [ctx.render(p) for p in problems]
        opponents = ray.get(ctx.league.matchmake.remote(n, agent.name))
        seeds = ctx.seeds(2 * n)
        seeds_a, seeds_b = seeds[:n], seeds[n:]
        side_a = agent.generator.submit("generate_finished", {"prompts": prompts, "seeds": seeds_a}, sampling=ctx.sampling)
        side_b = respond_as(ctx, prompts, opponents, seeds_b)  # both sides generate at once
        (responses_a, cut_a), (responses_b, cut_b) = _split(ray.get(side_a.result())), _split(ray.get(side_b))
        verdicts = ctx.judges.judge(problems, responses_a, responses_b)
        if ctx.config.judge.truncation == "loses":
            verdicts = truncation_loses(verdicts, cut_a, cut_b)
        seconds = time.perf_counter() - start
        versions = {name: v for name, (_, v) in ray.get(ctx.league.checkpoints.remote()).items()} | ctx.versions()
        recorded, pairs = ctx.league.record.options(num_returns=2).remote(
            self.name, round_, agent.name, agent.version, prompts, [(o, versions[o]) for o in opponents],
            responses_a, responses_b, verdicts, ctx.judges.name(), seconds, (cut_a, cut_b),
        )
        fields = ray.get(recorded)
        games = fields["summary"].games
        return Played({
            **settle(ctx, agent, fields),
            "games": games,
            "games_per_s": games / seconds,
            "truncated": sum(cut_a) + sum(cut_b),  # answers cut off at generator.max_new_tokens
        }, pairs)

    @staticmethod
    def record(
        round_: int, agent: str, version: int, prompts: list[str], opponents: list[tuple[str, int]],
        responses_a: list[str], responses_b: list[str], verdicts: list[Verdict], judge: str, play_seconds: float,
        truncated: tuple[list[bool], list[bool]] | None = None,
    ) -> Recorded:
        """The games of `agent` (at `version`) against `opponents` (name, version), their pairs and results."""
        games = games_table(
            round_, "head_to_head", (agent, version), opponents, prompts, responses_a, responses_b, verdicts, judge,
            play_seconds, truncated,
        )
        results = [GameResult(agent, name, SCORE_OF_WINNER[v.winner]) for (name, _), v in zip(opponents, verdicts)]
        return Recorded({}, pairs_from_games(games), {"games": games}, results)


def respond_as(ctx: PlayContext, prompts: list[str], opponents: list[str], seeds: list[int]) -> Any:
    """Each prompt answered by the opponent named beside it, as (text, cut off at the token
    limit): snapshots by the snapshot generators, learning agents (live play, league roles) by
    their own generators. An object reference to the answers in the prompts' order."""
    import ray

    from actors.pool import interleave
    from cluster.agents import split_by_player

    snapshots = ray.get(ctx.league.checkpoints.remote())
    live = {name: a.generator for name, a in ctx.agents.items()}
    groups = split_by_player(opponents, set(live) & set(opponents))
    requests = []
    for who, idx in groups.items():
        asks, sub_seeds = [prompts[i] for i in idx], [seeds[i] for i in idx]
        if who is None:
            names = [opponents[i] for i in idx]
            requests.append(ctx.snapshots.generate_as(asks, names, snapshots, ctx.sampling, sub_seeds))
        else:
            requests.append(live[who].submit("generate_finished", {"prompts": asks, "seeds": sub_seeds}, sampling=ctx.sampling))
    parts = [r.result() for r in requests]
    if list(groups) == [None]:
        return parts[0]
    return interleave.remote(list(groups.values()), *parts)


def _split(answers: list[tuple[str, bool]]) -> tuple[list[str], list[bool]]:
    """(text, cut off) answers as the texts and the flags."""
    return [text for text, _ in answers], [bool(cut) for _, cut in answers]
