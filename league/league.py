"""The league's state and rules: population, online Elo, win-rate matrix, matchmaking, admission.

Plain Python; the league actor hosts it. The current policy plays under the name
`current`; a frozen snapshot is named after the policy version it froze (`v3`). With league
roles (`matchmaking: alphastar`, see league/roles.py) the exploiters are learning agents too,
each under its own name, and their snapshots carry it (`main_exploiter-v3`).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from league.elo import elo_update
from league.matchmaking import Matchmaking, PFSPWeighting, near_skill_probabilities, pfsp_probabilities, sample_opponents
from league.records import replace_atomically
from league.roles import Historical, Role, RoleRules, Roster, choose_opponent, ready_to_snapshot, resets_after_snapshot

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
    payoff_decay: float = 1.0  # each recorded round (with roles, each agent's) discounts earlier results (PFSP's win rates)
    roles: RoleRules = RoleRules()  # the admission and reset rules of `matchmaking: alphastar`

    def __post_init__(self) -> None:
        if isinstance(self.roles, dict):  # as read back from league.json
            object.__setattr__(self, "roles", RoleRules(**self.roles))


@dataclass(frozen=True)
class Snapshot:
    name: str
    version: int
    checkpoint: str
    player: str = CURRENT  # the learning agent it froze


def snapshot_name(player: str, version: int) -> str:
    """`v3` for the current policy (the main agent), `main_exploiter-v3` for another agent."""
    return f"v{version}" if player == CURRENT else f"{player}-v{version}"


@dataclass(frozen=True)
class GameResult:
    """What the league needs of a game: who played whom and a's score (1 win, 0.5 tie, 0 loss);
    in a turn-based game also the seat a sat in (0 moved first), for the ratings per seat."""

    policy_a: str
    policy_b: str
    score_a: float
    seat_a: int | None = None


SEATS = ("first", "second")


def seated(policy: str, seat: int) -> str:
    """A policy in one seat, as the per-seat tally names it: `current@first`, `v3@second`."""
    return f"{policy}@{SEATS[seat]}"


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
    agents: dict[str, Role] = field(default_factory=lambda: {CURRENT: "main"})  # the learning agents
    versions: dict[str, int] = field(default_factory=dict)  # each agent's version at its latest games
    since_snapshot: dict[str, int] = field(default_factory=dict)  # each agent's rounds since its latest snapshot
    imported: list[str] = field(default_factory=list)  # human verdicts folded in, as "<key digest>:<sample id>"
    # turn-based games' results per seat, between seated names (`current@first` against `v3@second`):
    # a policy's strength in each seat, and the first mover's advantage (a policy against itself counts here)
    by_seat: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    seat_ratings: dict[str, float] = field(default_factory=dict)  # online Elo of the seated names

    def __post_init__(self) -> None:
        self.ratings.setdefault(CURRENT, self.settings.initial_elo)

    @property
    def current_version(self) -> int:
        """The version the current policy played its latest games at."""
        return self.versions.get(CURRENT, 0)

    @property
    def latest(self) -> Snapshot:
        if not self.population:
            raise LookupError("the league has no snapshot yet; admit the starting policy first")
        return self.population[-1]

    def latest_of(self, agent: str) -> Snapshot | None:
        """The newest snapshot in matchmaking that froze `agent`."""
        return next((s for s in reversed(self.population) if s.player == agent), None)

    def add_agent(self, name: str, role: Role) -> None:
        """Another learning agent (league roles); it starts at the starting snapshot's rating."""
        if name in self.agents:
            raise ValueError(f"agent {name!r} is already in the league")
        self.agents[name] = role
        self.ratings.setdefault(name, self.starting_rating())

    def admit(self, version: int, checkpoint: str, player: str = CURRENT) -> Snapshot:
        """Freeze agent `player` at `version` as a snapshot; it starts at the agent's Elo."""
        snap = Snapshot(name=snapshot_name(player, version), version=version, checkpoint=checkpoint, player=player)
        if any(s.name == snap.name for s in self.population + self.retired):
            raise ValueError(f"snapshot {snap.name} is already in the league; each version is frozen once")
        self.population.append(snap)
        self.ratings[snap.name] = self.ratings[player]
        for seat in range(len(SEATS)):  # and its ratings in each seat, where it has played turn-based games
            if seated(player, seat) in self.seat_ratings:
                self.seat_ratings[seated(snap.name, seat)] = self.seat_ratings[seated(player, seat)]
        self.since_snapshot[player] = 0
        self._retire_beyond_cap()
        return snap

    def _retire_beyond_cap(self) -> None:
        """The retirement rule: while the population is over `max_snapshots`, the lowest-rated
        snapshot other than each agent's newest (its admission yardstick) leaves matchmaking; its
        games and ratings stay, so Bradley-Terry and the table still see it."""
        cap = self.settings.max_snapshots
        while cap is not None and len(self.population) > cap:
            newest = {self.latest_of(agent) for agent in self.agents}
            candidates = [s for s in self.population if s not in newest]
            if not candidates:  # every snapshot is some agent's newest: the cap waits
                return
            weakest = min(candidates, key=lambda s: (self.ratings[s.name], s.version))
            self.population.remove(weakest)
            self.retired.append(weakest)

    def matchmake(self, n: int, rng: np.random.Generator, agent: str = CURRENT) -> list[str]:
        """Opponents for `n` games of `agent`: snapshot names, or with league roles also agents' (live play)."""
        if self.settings.matchmaking == "alphastar":
            return [choose_opponent(agent, self.roster(), self, rng) for _ in range(n)]
        return sample_opponents([s.name for s in self.population], self.opponent_probabilities(), n, rng)

    def roster(self) -> Roster:
        return Roster(dict(self.agents), [Historical(s.name, s.player) for s in self.population])

    def opponent_probabilities(self) -> np.ndarray:
        """The chance that each snapshot, in population order, is the next opponent."""
        names = [s.name for s in self.population]
        kind = self.settings.matchmaking
        if kind == "alphastar":
            raise ValueError("alphastar matchmaking chooses game by game by each agent's role; call matchmake")
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

    def record(self, results: list[GameResult], new_round: bool = True) -> None:
        """One round: online Elo, game by game in order, and the win-rate matrices (the recent
        one first discounted by `payoff_decay`, unless the results are not a round of their own:
        an evaluation's)."""
        k, scale = self.settings.k_factor, self.settings.elo_scale
        if new_round and self.settings.payoff_decay != 1.0:
            for row in self.recent.values():
                for cell in row.values():
                    cell[0] *= self.settings.payoff_decay
                    cell[1] *= self.settings.payoff_decay
        for r in results:
            a = self.ratings.setdefault(r.policy_a, self.settings.initial_elo)
            b = self.ratings.setdefault(r.policy_b, self.settings.initial_elo)
            for table in (self.results, self.recent):
                _tally(table, r.policy_a, r.policy_b, r.score_a)
            self._tally_seats(r)
            if r.policy_a == r.policy_b:  # self-play (league roles): counted once, moves no rating
                continue
            self.ratings[r.policy_a], self.ratings[r.policy_b] = elo_update(a, b, r.score_a, k, scale)
            for table in (self.results, self.recent):
                _tally(table, r.policy_b, r.policy_a, 1.0 - r.score_a)

    def _tally_seats(self, r: GameResult) -> None:
        """Both sides of a seated result; a policy's game against itself comes as two results (one
        per seat it held), so only the first mover's is counted."""
        if r.seat_a is None or (r.policy_a == r.policy_b and r.seat_a == 1):
            return
        a, b = seated(r.policy_a, r.seat_a), seated(r.policy_b, 1 - r.seat_a)
        _tally(self.by_seat, a, b, r.score_a)
        _tally(self.by_seat, b, a, 1.0 - r.score_a)
        before_a, before_b = (self.seat_ratings.setdefault(name, self.settings.initial_elo) for name in (a, b))
        self.seat_ratings[a], self.seat_ratings[b] = elo_update(before_a, before_b, r.score_a, self.settings.k_factor, self.settings.elo_scale)

    def first_mover_score(self) -> tuple[float, int] | None:
        """The first mover's score rate over every seated game, and how many games: 0.5 means no
        advantage. None before any turn-based game."""
        cells = [cell for name, row in self.by_seat.items() if name.endswith("@first") for cell in row.values()]
        games = sum(n for _, n in cells)
        return (sum(s for s, _ in cells) / games, int(games)) if games else None

    def win_rate(self, a: str, b: str, recent: bool = False) -> float:
        """a's score rate against b over all recorded games (or the decayed tally); 0.5 where they
        never met, and against itself (as in AlphaStar's payoff: its self-play record says which
        side the judge favours, not how strong it is)."""
        if a == b:
            return 0.5
        score, games = (self.recent if recent else self.results).get(a, {}).get(b, (0.0, 0.0))
        return score / games if games else 0.5

    def payoff(self, recent: bool = True) -> tuple[list[str], np.ndarray]:
        """The win-rate matrix over every policy (snapshots by version, retired included, then
        the learning agents): P[i, j] = i's score rate against j, 0.5 where they never met."""
        names = [s.name for s in self.snapshots_by_version()] + list(self.agents)
        return names, np.array([[self.win_rate(a, b, recent) for b in names] for a in names])

    def snapshots_by_version(self) -> list[Snapshot]:
        return sorted(self.population + self.retired, key=lambda s: s.version)

    def close_round(self, results: list[GameResult], version: int, agent: str = CURRENT) -> RoundSummary:
        """Book `agent`'s round (played at `version`), recorded already, and summarize it: its win
        rate against its own latest snapshot, and whether it is admitted now.

        A version already frozen is never admitted twice (a round with no pairs leaves it unchanged).
        """
        self.versions[agent] = version
        self.since_snapshot[agent] = self.since_snapshot.get(agent, 0) + 1
        latest = self.latest_of(agent)
        vs_latest = [r.score_a for r in results if r.policy_a == agent and latest and r.policy_b == latest.name]
        rate = float(np.mean(vs_latest)) if vs_latest else None
        if self.settings.matchmaking == "alphastar":
            ready = ready_to_snapshot(agent, self.roster(), self, self.since_snapshot[agent], self.settings.roles)
        else:
            ready = self.admits(rate, len(vs_latest))
        return RoundSummary(
            games=len(results),
            games_vs_latest=len(vs_latest),
            win_rate_vs_latest=rate,
            admissible=(latest is None or version > latest.version) and ready,
            elo=self.ratings[agent],
        )

    def reset_after_snapshot(self, agent: str, rng: np.random.Generator) -> bool:
        """Whether `agent` starts over from the starting policy now (its role's reset rule). If it
        does, its decayed results are cleared (matchmaking forgets what the old agent could beat)
        and its Elo goes back to the starting snapshot's; all-time results stay for the ratings."""
        if not resets_after_snapshot(self.agents[agent], self.settings.roles, rng):
            return False
        self.recent.pop(agent, None)
        for row in self.recent.values():
            row.pop(agent, None)
        self.ratings[agent] = self.starting_rating()
        for seat in range(len(SEATS)):
            start = seated(snapshot_name(CURRENT, 0), seat)
            if seated(agent, seat) in self.seat_ratings:
                self.seat_ratings[seated(agent, seat)] = self.seat_ratings.get(start, self.settings.initial_elo)
        return True

    def starting_rating(self) -> float:
        """The rating of snapshot v0, the starting policy every agent begins from."""
        return self.ratings.get(snapshot_name(CURRENT, 0), self.settings.initial_elo)

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
            "agents": self.agents,
            "versions": self.versions,
            "since_snapshot": self.since_snapshot,
            "imported": self.imported,
            "by_seat": self.by_seat,
            "seat_ratings": self.seat_ratings,
        }

    @classmethod
    def from_state(cls, state: dict) -> League:
        return cls(
            settings=LeagueSettings(**state["settings"]),
            population=[Snapshot(**s) for s in state["population"]],
            ratings=dict(state["ratings"]),
            results=_matrix(state["results"]),
            recent=_matrix(state.get("recent", state["results"])),
            retired=[Snapshot(**s) for s in state.get("retired", [])],
            agents=dict(state.get("agents", {CURRENT: "main"})),
            versions=dict(state.get("versions", {CURRENT: state.get("current_version", 0)})),
            since_snapshot=dict(state.get("since_snapshot", {})),
            imported=list(state.get("imported", [])),
            by_seat=_matrix(state.get("by_seat", {})),
            seat_ratings=dict(state.get("seat_ratings", {})),
        )

    def save(self, path: Path) -> None:
        replace_atomically(path, lambda tmp: tmp.write_text(json.dumps(self.to_state(), indent=1)))

    @classmethod
    def load(cls, path: Path) -> League:
        return cls.from_state(json.loads(path.read_text()))

    @classmethod
    def read(cls, path: Path) -> League:
        """`load` for a file a user hands over: a damaged one is a LeagueFileError saying what to do."""
        try:
            return cls.load(path)
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise LeagueFileError(f"{str(path)!r} is not a readable league state ({type(err).__name__}: {err}); "
                                  "resume the run (selfplay run --resume) to rewrite it from state/league.json") from None


class LeagueFileError(ValueError):
    """A league.json that cannot be read."""


def _tally(table: dict[str, dict[str, list[float]]], a: str, b: str, score: float) -> None:
    cell = table.setdefault(a, {}).setdefault(b, [0.0, 0.0])
    cell[0] += score
    cell[1] += 1


def _matrix(rows: dict) -> dict[str, dict[str, list[float]]]:
    return {a: {b: list(v) for b, v in row.items()} for a, row in rows.items()}
