"""What the league actor hosts: the league's state plus the run's game and pair records.

Responses arrive here straight from the generators (as Ray object references resolved by
Ray), so the driver never carries the games' texts; verdicts come from the judge pool.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from judge.verdict import SCORE_OF_WINNER
from league.league import CURRENT, GameResult, League, LeagueSettings, Snapshot
from league.ratings import bradley_terry_with_intervals
from league.records import write_table_atomic
from league.roles import Role


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
        self.recording_seconds = 0.0

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

    def record_evaluation(self, folder: str, round_: int, games: pa.Table) -> int:
        """Evaluation games (cluster/round_robin.py): written to `folder/round-N.parquet` and
        rated (Elo, payoff, Bradley-Terry), but no round of any agent's and no pairs. Returns the count."""
        write_table_atomic(games, self.run_dir / folder / f"round-{round_:05d}.parquet")
        self.league.record([GameResult(g["policy_a"], g["policy_b"], SCORE_OF_WINNER[g["winner"]])
                            for g in games.select(["policy_a", "policy_b", "winner"]).to_pylist()], new_round=False)
        self.league.save(self.state_path)
        return games.num_rows

    def record(self, game: str, round_: int, agent: str, version: int, *played: Any) -> tuple[dict[str, Any], pa.Table]:
        """One round of `game` played by `agent` at `version` (what its `play` sent, Ray having
        resolved the references): its records and pairs written, its results rated and the
        league saved. Returns the row's fields (with `summary` where results were rated) and the pairs."""
        from games.base import pair_file, registry

        start = time.perf_counter()
        kind = registry()[game]
        recorded = kind.record(round_, agent, version, *played)
        for folder, table in recorded.tables.items():
            write_table_atomic(table, self.run_dir / folder / pair_file(round_, agent, ""))
        write_table_atomic(recorded.pairs, self.run_dir / "pairs" / pair_file(round_, agent, kind.tag))
        fields = dict(recorded.fields)
        if recorded.results:
            self.league.record(recorded.results)
            fields["summary"] = self.league.close_round(recorded.results, version, agent)
            self.league.save(self.state_path)
        self.recording_seconds += time.perf_counter() - start
        return fields, recorded.pairs

    def take_recording_seconds(self) -> float:
        """Seconds `record` spent since the last take (the metrics row's recording phase)."""
        taken, self.recording_seconds = self.recording_seconds, 0.0
        return taken
