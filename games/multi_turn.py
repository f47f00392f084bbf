"""Multi-turn games: the learning agent plays a turn-based game (envs/, named by the recipe's
`task.env`) against matchmade opponents, many episodes at once in lockstep.

Each iteration draws `seeds` starting positions and one opponent per seed; the agent plays each
seed `episodes_per_seed` times in each seat, so every pairing plays both sides equally and a
seed gives won and lost episodes to compare. The league rates the episodes' outcomes; the
learner takes either trajectory pairs (DPO over the agent's action tokens) or every move with
its reward (REINFORCE with a baseline per game and seat), as `objective` says.

Every iteration, and at the start, the policy (greedy) also plays fixed opponents that never
learn, `random` (a random legal move) and `expert` (the game's perfect player), in both seats:
`win_rate_vs_random` and `win_rate_vs_expert` count a draw as half a win, with 95% intervals.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from cluster.section import RecipeSection
from envs.base import EnvOptions, ExpertPlayer, RandomPlayer, outcome
from envs.lockstep import Episode, Mover, play
from games.base import Game, PlayContext, Played, Recorded, game, settle
from judge.registry import MODEL_KINDS
from league.episodes import episode_tables, reinforce_samples, trajectory_pairs
from league.league import GameResult
from league.ratings import wilson_interval
from prompts.example import Example

if TYPE_CHECKING:
    from cluster.agents import Agent

EVAL_SEEDS = 10**9  # evaluation's starting positions: seeds from here on, the same every iteration


class MultiTurnOptions(RecipeSection):
    """Multi-turn play of the recipe's game (`task.kind: game`)."""

    seeds: int = Field(16, ge=1, description="starting positions per iteration, one opponent each")
    episodes_per_seed: int = Field(4, ge=1, description="episodes per seed and seat")
    objective: Literal["dpo", "reinforce"] = Field("dpo", description="DPO on episode pairs, or REINFORCE with a role baseline")
    eval_episodes: int = Field(64, ge=2, description="episodes against each fixed opponent per evaluation, half in each seat")
    eval_opponents: list[Literal["random", "expert"]] = Field(["random", "expert"])


@game
class MultiTurn(Game):
    name = "multi_turn"
    options = MultiTurnOptions
    tag = "multi_turn"
    folders = ("episodes", "turns")
    counted = "episodes"
    matchmade = True

    def check(self, config: Any) -> None:
        if config.task.kind != "game":
            raise ValueError(
                f"self_play.modes multi_turn plays a turn-based game, and task kind {config.task.kind!r} is not one: "
                "set task.kind: game and task.env (name: nim, tictactoe, textarena, ...)"
            )
        env = config.task.environment()
        if "expert" in config.multi_turn.eval_opponents and not env.has_expert:
            raise ValueError(f"game {env.label} has no expert player: set multi_turn.eval_opponents to [random]")
        if env.judged and config.judge.kind not in MODEL_KINDS:
            raise ValueError(
                f"game {env.label} is decided by the run's judges, and judge kind {config.judge.kind!r} cannot weigh arguments: "
                "set judge.kind to pairwise_llm (with judge.llm) or reward_model"
            )

    def play(self, ctx: PlayContext, agent: Agent, round_: int, size: int | None = None) -> Played:
        import ray

        start = time.perf_counter()
        opts: MultiTurnOptions = ctx.config.multi_turn
        env: EnvOptions = ctx.task.env  # type: ignore[attr-defined]  # a game task (checked when the recipe is read)
        n = size or opts.seeds
        opponents = ray.get(ctx.league.matchmake.remote(n, agent.name))
        versions = {name: v for name, (_, v) in ray.get(ctx.league.checkpoints.remote()).items()} | ctx.versions()
        episodes: list[Episode] = []
        for seed, opponent in zip(ctx.seeds(n), opponents):
            for seat in (0, 1):
                for _ in range(opts.episodes_per_seed):
                    seats = (agent.name, opponent) if seat == 0 else (opponent, agent.name)
                    episodes.append(_episode(f"r{round_:05d}-e{len(episodes):06d}", env, seed, seats, (versions[seats[0]], versions[seats[1]])))
        play(episodes, policy_movers(ctx, {agent.name, *opponents}, ctx.sampling), lambda o: ctx.render(Example(o)), ctx.seeds, ctx.judges.judge)
        seconds = time.perf_counter() - start
        fields, pairs = ctx.league.record.options(num_returns=2).remote(
            self.name, round_, agent.name, agent.version, *as_records(round_, env.label, episodes), opts.objective
        )
        return Played({**settle(ctx, agent, ray.get(fields)), "episodes_per_s": len(episodes) / seconds}, pairs)

    @staticmethod
    def record(round_: int, agent: str, version: int, episodes: list[dict[str, Any]], turns: list[dict[str, Any]],
               moves: dict[str, list[tuple[int, str, str]]], objective: str) -> Recorded:
        """The episodes and turns tables, the learner's data and the rated results of `agent`'s episodes."""
        episode_table, turn_table = episode_tables(episodes, turns)
        learn = trajectory_pairs if objective == "dpo" else reinforce_samples
        results: list[GameResult] = []
        seat_scores: dict[int, list[float]] = {0: [], 1: []}
        for e in episodes:
            for seat in (0, 1):
                if e[f"player_{seat}"] == agent:
                    score = outcome((e["reward_0"], e["reward_1"]), seat)
                    results.append(GameResult(agent, e[f"player_{1 - seat}"], score, seat))
                    seat_scores[seat].append(score)
        fields = {
            "episodes": len(episodes),
            "invalid_moves": sum(1 for t in turns if not t["valid"]),
            "mean_turns": sum(e["turns"] for e in episodes) / max(len(episodes), 1),
            # the agent's score rate moving first and second: a first-mover advantage shows here
            "seat_scores": {("first", "second")[s]: sum(v) / len(v) for s, v in seat_scores.items() if v},
        }
        return Recorded(fields, learn(round_, agent, episodes, moves), {"episodes": episode_table, "turns": turn_table}, results)

    def evaluate(self, ctx: PlayContext, agent: Agent) -> dict[str, Any]:
        """Greedy play against each fixed opponent, half the episodes in each seat."""
        opts: MultiTurnOptions = ctx.config.multi_turn
        env: EnvOptions = ctx.task.env  # type: ignore[attr-defined]
        row: dict[str, Any] = {}
        for opponent in opts.eval_opponents:
            episodes = [
                _episode(f"eval-{i}", env, EVAL_SEEDS + i // 2, (agent.name, opponent) if i % 2 == 0 else (opponent, agent.name), (0, 0))
                for i in range(opts.eval_episodes)
            ]
            play(episodes, policy_movers(ctx, {agent.name}, ctx.greedy), lambda o: ctx.render(Example(o)), ctx.seeds, ctx.judges.judge)
            scores = [outcome(e.env.rewards(), e.players.index(agent.name)) for e in episodes]
            rate = sum(scores) / len(scores)
            row[f"win_rate_vs_{opponent}"] = rate
            row[f"win_rate_vs_{opponent}_ci"] = list(wilson_interval(rate, len(scores)))
        return row


def _episode(episode_id: str, env: EnvOptions, seed: int, seats: tuple[str, str], versions: tuple[int, int]) -> Episode:
    e = env.make()
    e.reset(seed)
    return Episode(episode_id, seed, seats, versions, e)


def policy_movers(ctx: PlayContext, names: set[str], sampling: Any) -> dict[str, Mover]:
    """A mover for each player named: learning agents ask their generators, snapshots the
    snapshot generators, and the fixed opponents `random` and `expert` play in Python."""
    import ray

    checkpoints = ray.get(ctx.league.checkpoints.remote())
    movers: dict[str, Mover] = {"random": _fixed(RandomPlayer(int(ctx.rng.integers(2**31))).act), "expert": _fixed(ExpertPlayer().act)}
    for name in names - set(movers):
        movers[name] = _live(ctx.agents[name].generator, sampling) if name in ctx.agents else _snapshot(ctx, name, checkpoints, sampling)
    return movers


def _live(pool: Any, sampling: Any) -> Mover:
    def ask(envs: list[Any], prompts: list[str], seeds: list[int]) -> Callable[[], list[str]]:
        return _waiter(pool.generate(prompts, sampling, seeds))

    return ask


def _snapshot(ctx: PlayContext, name: str, checkpoints: dict[str, Any], sampling: Any) -> Mover:
    def ask(envs: list[Any], prompts: list[str], seeds: list[int]) -> Callable[[], list[str]]:
        pending = ctx.snapshots.generate_as(prompts, [name] * len(prompts), checkpoints, sampling, seeds)
        return _waiter(pending.result(), texts_only=True)

    return ask


def _fixed(act: Callable[[Any], str]) -> Mover:
    def ask(envs: list[Any], prompts: list[str], seeds: list[int]) -> Callable[[], list[str]]:
        return lambda: [act(env) for env in envs]

    return ask


def _waiter(ref: Any, texts_only: bool = False) -> Callable[[], list[str]]:
    import ray

    def wait() -> list[str]:
        answers = ray.get(ref)
        return [a[0] for a in answers] if texts_only else answers

    return wait


Records = tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, list[tuple[int, str, str]]]]


def as_records(round_: int, game_name: str, episodes: list[Episode]) -> Records:
    """Episodes, turns and each episode's (seat, prompt, action) moves, as plain data for the league actor."""
    rows: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    moves: dict[str, list[tuple[int, str, str]]] = {}
    for e in episodes:
        r0, r1 = e.env.rewards()
        rows.append({
            "episode_id": e.id, "round": round_, "game": game_name, "seed": e.seed, "player_0": e.players[0],
            "version_0": e.versions[0], "player_1": e.players[1], "version_1": e.versions[1], "turns": len(e.turns),
            "reward_0": r0, "reward_1": r1, "winner": None if r0 == r1 else (0 if r0 > r1 else 1), "reason": e.env.reason,
        })
        turns += [{"episode_id": e.id, "round": round_, "turn": t.index, "seat": t.seat, "player": t.player,
                   "observation": t.observation, "action": t.action, "valid": t.valid} for t in e.turns]
        moves[e.id] = [(t.seat, t.prompt, t.action) for t in e.turns]
    return rows, turns, moves
