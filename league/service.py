"""What the league actor hosts: the league's state plus the run's game and pair records.

Responses arrive here straight from the generators (as Ray object references resolved by
Ray), so the driver never carries the games' texts; verdicts come from the judge pool.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from judge.verdict import SCORE_OF_WINNER, Verdict
from league.adversarial import filter_failures
from league.refinement import refinement_records
from league.skill import skill_records
from league.league import CURRENT, GameResult, League, LeagueSettings, RoundSummary, Snapshot
from league.ratings import bradley_terry_with_intervals
from league.records import games_table, pairs_from_games, write_table_atomic


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

    def rng_state(self) -> dict:
        return self.rng.bit_generator.state

    def set_rng_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state

    def save_to(self, path: str) -> None:
        """The league as it is now, to `path` (a resumable state's copy)."""
        self.league.save(Path(path))

    def admit(self, version: int, checkpoint: str) -> Snapshot:
        snap = self.league.admit(version, checkpoint)
        self.league.save(self.state_path)
        return snap

    def matchmake(self, n: int) -> list[str]:
        return self.league.matchmake(n, self.rng)

    def checkpoints(self) -> dict[str, tuple[str, int]]:
        """Snapshot name -> (checkpoint path, version), what an opponent generator needs to serve it."""
        return {s.name: (s.checkpoint, s.version) for s in self.league.population}

    def ratings(self) -> dict[str, float]:
        return dict(self.league.ratings)

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
        improved = sum(1 for w in traces_table.column("winner").to_pylist() if w == "improved")
        return {"refinement_traces": traces_table.num_rows, "refinement_improved": improved}, pairs_table

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
        current_version: int,
        prompts: list[str],
        opponents: list[str],
        responses_a: list[str],
        responses_b: list[str],
        verdicts: list[Verdict],
        judge: str,
        play_seconds: float,
    ) -> tuple[RoundSummary, pa.Table]:
        """Write the round's games and pairs, update ratings, save the league; return the summary and the pairs."""
        versions = {s.name: s.version for s in self.league.population}
        games = games_table(
            round_, "head_to_head", (CURRENT, current_version), [(o, versions[o]) for o in opponents],
            prompts, responses_a, responses_b, verdicts, judge, play_seconds,
        )
        pairs = pairs_from_games(games)
        write_table_atomic(games, self.run_dir / "games" / f"round-{round_:05d}.parquet")
        write_table_atomic(pairs, self.run_dir / "pairs" / f"round-{round_:05d}.parquet")
        results = [GameResult(CURRENT, o, SCORE_OF_WINNER[v.winner]) for o, v in zip(opponents, verdicts)]
        self.league.record(results)
        self.league.current_version = current_version
        summary = self.league.summarize_round(results, current_version)
        self.league.save(self.state_path)
        return summary, pairs
