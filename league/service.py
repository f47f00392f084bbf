"""What the league actor hosts: the league's state plus the run's game and pair records.

Responses arrive here straight from the generators (as Ray object references resolved by
Ray), so the driver never carries the games' texts; verdicts come from the judge pool.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from judge.verdict import SCORE_OF_WINNER, Verdict
from league.adversarial import filter_failures
from league.league import CURRENT, GameResult, League, LeagueSettings, RoundSummary, Snapshot
from league.ratings import bradley_terry_with_intervals
from league.records import games_table, pairs_from_games, write_table_atomic
from league.refinement import refinement_records
from league.roles import Role
from league.skill import skill_records


class LeagueService:
    def __init__(self, run_dir: str | Path, settings: LeagueSettings, seed: int = 0, resume: bool = False) -> None:
        """A fresh league, or with `resume` the one in the run directory's `league.json`
        (population, ratings and results exactly as saved; `settings` from the recipe)."""
        self.run_dir = Path(run_dir)
        self.state_path = self.run_dir / "league.json"
        if resume:
            self.league = League.load(self.state_path)
            self.league.settings = settings
        elif self.state_path.exists():
            raise FileExistsError(f"{self.state_path} already exists; a new league starts in a fresh run directory")
        else:
            self.league = League(settings)
        self.rng = np.random.default_rng(seed)

    def rng_state(self) -> dict[str, Any]:
        return dict(self.rng.bit_generator.state)

    def set_rng_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state

    def save_to(self, path: str) -> None:
        """The league as it is now, to `path` (a resumable state's copy)."""
        self.league.save(Path(path))

    def admit(self, version: int, checkpoint: str, player: str = CURRENT) -> Snapshot:
        """A new snapshot; its checkpoint is kept relative to the run directory, so a copied or
        moved run reads its own checkpoints."""
        path = Path(checkpoint)
        if path.is_absolute() and path.resolve().is_relative_to(self.run_dir.resolve()):
            checkpoint = str(path.resolve().relative_to(self.run_dir.resolve()))
        snap = self.league.admit(version, checkpoint, player)
        self.league.save(self.state_path)
        return snap

    def add_agent(self, name: str, role: Role) -> None:
        self.league.add_agent(name, role)
        self.league.save(self.state_path)

    def agents(self) -> dict[str, Role]:
        return dict(self.league.agents)

    def reset_after_snapshot(self, agent: str) -> bool:
        """Whether `agent` starts over now (its role's rule, drawn here); the league forgets its recent results if so."""
        reset = self.league.reset_after_snapshot(agent, self.rng)
        self.league.save(self.state_path)
        return reset

    def matchmake(self, n: int, agent: str = CURRENT) -> list[str]:
        return self.league.matchmake(n, self.rng, agent)

    def checkpoints(self) -> dict[str, tuple[str, int]]:
        """Snapshot name -> (checkpoint path, version), what an opponent generator needs to serve it."""
        return {s.name: (str(self.run_dir / s.checkpoint), s.version) for s in self.league.population}

    def snapshots(self) -> list[str]:
        """Every snapshot ever admitted (retired ones too), by version."""
        return [s.name for s in self.league.snapshots_by_version()]

    def ratings(self) -> dict[str, float]:
        return dict(self.league.ratings)

    def win_rate(self, a: str, b: str) -> float:
        """a's score rate against b in the decayed tally matchmaking reads (0.5 where they never
        met); an exploiter that started over has no results there from before."""
        return self.league.win_rate(a, b, recent=True)

    def bradley_terry(self, samples: int) -> dict[str, list[float]]:
        """Bradley-Terry rating and 95% interval per policy, fitted on every game so far."""
        rated = bradley_terry_with_intervals(self.league.results, self.rng, samples=samples)
        return {name: [r.rating, r.low, r.high] for name, r in rated.items()}

    def record_failures(
        self, round_: int, prompts: list[str], responses: list[str], scores: list[float], threshold: float
    ) -> tuple[dict[str, int], pa.Table]:
        """Adversarial filtering's records: `responses` and `scores` hold the samples of each
        prompt in turn. Writes the failure set and its pairs; returns counts and the pairs."""
        n = len(responses) // len(prompts)
        grouped = [responses[i * n : (i + 1) * n] for i in range(len(prompts))]
        marks = [scores[i * n : (i + 1) * n] for i in range(len(prompts))]
        failures, pairs = filter_failures(round_, prompts, grouped, marks, threshold)
        write_table_atomic(failures, self.run_dir / "failures" / f"round-{round_:05d}.parquet")
        write_table_atomic(pairs, self.run_dir / "pairs" / f"round-{round_:05d}-adversarial.parquet")
        return {"failures": failures.num_rows, "adversarial_prompts": len(prompts)}, pairs

    def record_refinement(
        self,
        round_: int,
        steps: list[tuple[list[str], list[str], list[str]]],
        prompts: list[str],
        verdicts: list[list[Verdict]],
    ) -> tuple[dict[str, int], pa.Table]:
        """Iterative refinement's records: `steps[k]` holds (originals, critiques, improved) of
        step k+1 and `verdicts[k]` their judgements. Writes traces and pairs; returns counts and pairs."""
        traces, pairs = [], []
        for k, ((originals, critiques, improved), judged) in enumerate(zip(steps, verdicts, strict=True)):
            t, p = refinement_records(round_, k + 1, prompts, originals, critiques, improved, judged)
            traces.append(t)
            pairs.append(p)
        traces_table, pairs_table = pa.concat_tables(traces), pa.concat_tables(pairs)
        write_table_atomic(traces_table, self.run_dir / "traces" / f"round-{round_:05d}.parquet")
        write_table_atomic(pairs_table, self.run_dir / "pairs" / f"round-{round_:05d}-refinement.parquet")
        better = sum(1 for w in traces_table.column("winner").to_pylist() if w == "improved")
        return {"refinement_traces": traces_table.num_rows, "refinement_improved": better}, pairs_table

    def record_skill(
        self,
        round_: int,
        prompts: list[str],
        matchups: list[tuple[str, str]],
        responses: dict[str, list[str]],
        verdicts: list[list[Verdict]],
    ) -> tuple[dict[str, dict[str, float]], pa.Table]:
        """Skill-conditioned games and pairs to disk; returns the win rate by skill pair and the pairs."""
        games, pairs, rates = skill_records(round_, prompts, matchups, responses, verdicts)
        write_table_atomic(games, self.run_dir / "skill_games" / f"round-{round_:05d}.parquet")
        write_table_atomic(pairs, self.run_dir / "pairs" / f"round-{round_:05d}-skill.parquet")
        return {"skill_win_rates": rates}, pairs

    def record_round(
        self,
        round_: int,
        version: int,
        prompts: list[str],
        opponents: list[str],
        responses_a: list[str],
        responses_b: list[str],
        verdicts: list[Verdict],
        judge: str,
        play_seconds: float,
        agent: str = CURRENT,
        live_versions: dict[str, int] | None = None,
        truncated: tuple[list[bool], list[bool]] | None = None,
    ) -> tuple[RoundSummary, pa.Table]:
        """Write the round of `agent` (played at `version`): its games and pairs, update ratings,
        save the league; return the summary and the pairs. Opponents are snapshots or, with
        league roles, learning agents, at the versions their generators served (`live_versions`).
        `truncated` says which answers of each side were cut off at the token limit."""
        live = {a: self.league.versions.get(a, 0) for a in self.league.agents} | (live_versions or {})
        versions = {s.name: s.version for s in self.league.population} | live | {agent: version}
        games = games_table(
            round_, "head_to_head", (agent, version), [(o, versions[o]) for o in opponents],
            prompts, responses_a, responses_b, verdicts, judge, play_seconds, truncated,
        )
        pairs = pairs_from_games(games)
        suffix = "" if agent == CURRENT else f"-{agent}"
        write_table_atomic(games, self.run_dir / "games" / f"round-{round_:05d}{suffix}.parquet")
        write_table_atomic(pairs, self.run_dir / "pairs" / f"round-{round_:05d}{suffix}.parquet")
        results = [GameResult(agent, o, SCORE_OF_WINNER[v.winner]) for o, v in zip(opponents, verdicts)]
        self.league.record(results)
        summary = self.league.close_round(results, version, agent)
        self.league.save(self.state_path)
        return summary, pairs
