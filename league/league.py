"""The league's state and rules: population, online Elo, win-rate matrix, matchmaking, admission.

Plain Python; the league actor hosts it. The current policy plays under the name
`current`; a frozen snapshot is named after the policy version it froze (`v3`).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
import numpy as np

from league.elo import elo_update
from league.records import replace_atomically
from league.matchmaking import Matchmaking, PFSPWeighting, near_skill_probabilities, pfsp_probabilities, sample_opponents

CURRENT = "current"


@dataclass(frozen=True)
class LeagueSettings:
    initial_elo: float = 1000.0
    elo_scale: float = 400.0
    k_factor: float = 4.0
    matchmaking: Matchmaking = "previous"
    pfsp_weighting: PFSPWeighting = "squared"
    near_skill_width: float = 100.0
    admission_threshold: float = 0.6
    min_admission_games: int = 32
    max_snapshots: int | None = None  # beyond this, the lowest-rated snapshot (never the newest) retires
    payoff_decay: float = 1.0  # each round of results discounts earlier ones by this factor (PFSP's win rates)


@dataclass(frozen=True)
class Snapshot:
    name: str
    version: int
    checkpoint: str


@dataclass(frozen=True)
class GameResult:
    """What the league needs of a game: who played whom and a's score (1 win, 0.5 tie, 0 loss)."""

    policy_a: str
    policy_b: str
    score_a: float


@dataclass
class RoundSummary:
    games: int
    games_vs_latest: int
    win_rate_vs_latest: float | None
    admissible: bool
    elo: float


@dataclass
class League:
    settings: LeagueSettings
    population: list[Snapshot] = field(default_factory=list)
    ratings: dict[str, float] = field(default_factory=dict)
    # results[a][b] = [a's total score against b, games between them]
    results: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    # the same tally with earlier rounds discounted by payoff_decay: what matchmaking reads
    recent: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    retired: list[Snapshot] = field(default_factory=list)  # out of matchmaking; their games and ratings kept
    current_version: int = 0  # the version the current policy played its latest games at

    def __post_init__(self) -> None:
        self.ratings.setdefault(CURRENT, self.settings.initial_elo)

    @property
    def latest(self) -> Snapshot:
        if not self.population:
            raise LookupError("the league has no snapshot yet; admit the starting policy first")
        return self.population[-1]

    def admit(self, version: int, checkpoint: str) -> Snapshot:
        """Freeze the current policy at `version` as a snapshot; it starts at the current Elo."""
        snap = Snapshot(name=f"v{version}", version=version, checkpoint=checkpoint)
        if any(s.name == snap.name for s in self.population + self.retired):
            raise ValueError(f"snapshot {snap.name} is already in the league; each version is frozen once")
        self.population.append(snap)
        self.ratings[snap.name] = self.ratings[CURRENT]
        self._retire_beyond_cap()
        return snap

    def _retire_beyond_cap(self) -> None:
        """The retirement rule: while the population is over `max_snapshots`, the lowest-rated
        snapshot other than the newest (the admission yardstick) leaves matchmaking; its games
        and ratings stay, so Bradley-Terry and the table still see it."""
        cap = self.settings.max_snapshots
        while cap is not None and len(self.population) > cap:
            weakest = min(self.population[:-1], key=lambda s: (self.ratings[s.name], s.version))
            self.population.remove(weakest)
            self.retired.append(weakest)

    def matchmake(self, n: int, rng: np.random.Generator) -> list[str]:
        """Opponents for `n` games of the current policy."""
        return sample_opponents([s.name for s in self.population], self.opponent_probabilities(), n, rng)

    def opponent_probabilities(self) -> np.ndarray:
        """The chance that each snapshot, in population order, is the next opponent."""
        names = [s.name for s in self.population]
        kind = self.settings.matchmaking
        if not names:
            raise LookupError("the league has no snapshot yet; admit the starting policy first")
        if kind == "previous":
            return np.eye(len(names))[-1]
        if kind == "uniform":
            return np.full(len(names), 1 / len(names))
        if kind == "pfsp":
            rates = np.array([self.win_rate(CURRENT, name, recent=True) for name in names])
            return pfsp_probabilities(rates, self.settings.pfsp_weighting)
        elos = np.array([self.ratings[name] for name in names])
        return near_skill_probabilities(elos, self.ratings[CURRENT], self.settings.near_skill_width)

    def record(self, results: list[GameResult]) -> None:
        """One round: online Elo, game by game in order, and the win-rate matrices (the recent
        one first discounted by `payoff_decay`)."""
        k, scale = self.settings.k_factor, self.settings.elo_scale
        if self.settings.payoff_decay != 1.0:
            for row in self.recent.values():
                for cell in row.values():
                    cell[0] *= self.settings.payoff_decay
                    cell[1] *= self.settings.payoff_decay
        for r in results:
            a = self.ratings.setdefault(r.policy_a, self.settings.initial_elo)
            b = self.ratings.setdefault(r.policy_b, self.settings.initial_elo)
            self.ratings[r.policy_a], self.ratings[r.policy_b] = elo_update(a, b, r.score_a, k, scale)
            for table in (self.results, self.recent):
                _tally(table, r.policy_a, r.policy_b, r.score_a)
                _tally(table, r.policy_b, r.policy_a, 1.0 - r.score_a)

    def win_rate(self, a: str, b: str, recent: bool = False) -> float:
        """a's score rate against b over all recorded games (or the decayed tally); 0.5 where they never met."""
        score, games = (self.recent if recent else self.results).get(a, {}).get(b, (0.0, 0.0))
        return score / games if games else 0.5

    def payoff(self, recent: bool = True) -> tuple[list[str], np.ndarray]:
        """The win-rate matrix over every policy (snapshots in admission order, retired included,
        then the current one): P[i, j] = i's score rate against j, 0.5 where they never met."""
        names = [s.name for s in sorted(self.population + self.retired, key=lambda s: s.version)] + [CURRENT]
        return names, np.array([[self.win_rate(a, b, recent) for b in names] for a in names])

    def summarize_round(self, results: list[GameResult], current_version: int) -> RoundSummary:
        """Win rate of the current policy against the latest snapshot in this round, and whether it is admitted.

        A version already frozen is never admitted twice (a round with no pairs leaves it unchanged).
        """
        latest = self.latest
        vs_latest = [r.score_a for r in results if r.policy_a == CURRENT and r.policy_b == latest.name]
        rate = float(np.mean(vs_latest)) if vs_latest else None
        return RoundSummary(
            games=len(results),
            games_vs_latest=len(vs_latest),
            win_rate_vs_latest=rate,
            admissible=current_version > latest.version and self.admits(rate, len(vs_latest)),
            elo=self.ratings[CURRENT],
        )

    def admits(self, win_rate: float | None, games: int) -> bool:
        """The admission rule: enough games against the latest snapshot, win rate at or above the threshold."""
        if win_rate is None or games < self.settings.min_admission_games:
            return False
        return win_rate >= self.settings.admission_threshold - 1e-12

    def to_state(self) -> dict:
        return {
            "settings": asdict(self.settings),
            "population": [asdict(s) for s in self.population],
            "ratings": self.ratings,
            "results": self.results,
            "recent": self.recent,
            "retired": [asdict(s) for s in self.retired],
            "current_version": self.current_version,
        }

    @classmethod
    def from_state(cls, state: dict) -> "League":
        return cls(
            settings=LeagueSettings(**state["settings"]),
            population=[Snapshot(**s) for s in state["population"]],
            ratings=dict(state["ratings"]),
            results=_matrix(state["results"]),
            recent=_matrix(state.get("recent", state["results"])),
            retired=[Snapshot(**s) for s in state.get("retired", [])],
            current_version=state.get("current_version", 0),
        )

    def save(self, path: Path) -> None:
        replace_atomically(path, lambda tmp: tmp.write_text(json.dumps(self.to_state(), indent=1)))

    @classmethod
    def load(cls, path: Path) -> "League":
        return cls.from_state(json.loads(path.read_text()))


def _tally(table: dict[str, dict[str, list[float]]], a: str, b: str, score: float) -> None:
    cell = table.setdefault(a, {}).setdefault(b, [0.0, 0.0])
    cell[0] += score
    cell[1] += 1


def _matrix(rows: dict) -> dict[str, dict[str, list[float]]]:
    return {a: {b: list(v) for b, v in row.items()} for a, row in rows.items()}
