"""League roles in the AlphaStar manner: whom each role plays, when its snapshots join, when it resets."""
from pathlib import Path

import numpy as np

from league.league import CURRENT, GameResult, League, LeagueSettings
from league.matchmaking import pfsp_probabilities
from league.roles import Historical, RoleRules, Roster, choose_opponent, ready_to_snapshot, remove_monotonic_suffix, resets_after_snapshot
from league.table import league_table

N = 20_000


class Rates:
    """A payoff given outright: rates[(a, b)] is a's win rate against b, 0.5 where unset."""

    def __init__(self, rates: dict[tuple[str, str], float]) -> None:
        self.rates = rates

    def win_rate(self, a: str, b: str, recent: bool = False) -> float:
        return self.rates.get((a, b), 0.5)


ROSTER = Roster(
    {"main": "main", "mx": "main_exploiter", "lx": "league_exploiter"},
    [Historical("main-v0", "main"), Historical("main-v1", "main"), Historical("mx-v1", "mx"), Historical("lx-v1", "lx")],
)


def _frequencies(agent: str, roster: Roster, payoff: Rates, seed: int = 0) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    picks = [choose_opponent(agent, roster, payoff, rng) for _ in range(N)]
    return {name: picks.count(name) / N for name in set(picks)}


def _close(observed: float, expected: float) -> bool:
    return abs(observed - expected) <= 5 * np.sqrt(expected * (1 - expected) / N) + 1e-9


def test_main_agent_splits_pfsp_over_the_league_and_self_play() -> None:
    rates = {("main", "main-v0"): 0.9, ("main", "main-v1"): 0.8, ("main", "mx-v1"): 0.6, ("main", "lx-v1"): 0.4}
    freq = _frequencies("main", ROSTER, Rates(rates))
    names = [h.name for h in ROSTER.historical]
    pfsp = pfsp_probabilities(np.array([rates[("main", n)] for n in names]), "squared")
    # nothing to verify (no exploit under 0.3, nothing forgotten under 0.7): the other half is self-play
    assert _close(freq["main"], 0.5)
    for name, p in zip(names, pfsp):
        assert _close(freq[name], 0.5 * p), (name, freq[name], 0.5 * p)


def test_main_agent_verifies_against_an_unfixed_exploit() -> None:
    rates = {("main", "mx-v1"): 0.1}
    freq = _frequencies("main", ROSTER, Rates(rates))
    names = [h.name for h in ROSTER.historical]
    pfsp = pfsp_probabilities(np.array([rates.get(("main", n), 0.5) for n in names]), "squared")
    # 15% of games go to the exploiter's snapshot it loses to, on top of its PFSP share
    assert _close(freq["mx-v1"], 0.5 * pfsp[names.index("mx-v1")] + 0.15)
    assert _close(freq["main"], 0.35)


def test_main_agent_replays_snapshots_it_forgot_and_takes_a_curriculum_when_it_cannot_hold_its_own() -> None:
    # main-v0 is beaten only 40% of the time now, while the newer main-v1 is beaten more (not a falling tail)
    forgot = {("main", "main-v0"): 0.4, ("main", "main-v1"): 0.9, ("main", "mx-v1"): 0.9, ("main", "lx-v1"): 0.9}
    freq = _frequencies("main", ROSTER, Rates(forgot))
    own = pfsp_probabilities(np.array([0.4, 0.9]), "squared")
    pfsp = pfsp_probabilities(np.array([0.4, 0.9, 0.9, 0.9]), "squared")
    assert _close(freq["main-v0"], 0.5 * pfsp[0] + 0.15 * own[0])
    # losing to itself (0.3 or less): its self-play games go to its own snapshots by variance instead
    weak = {("main", "main"): 0.2, ("main", "main-v0"): 0.5, ("main", "main-v1"): 0.1}
    freq = _frequencies("main", ROSTER, Rates(weak))
    assert "main" not in freq
    curriculum = pfsp_probabilities(np.array([0.5, 0.1]), "variance")
    pfsp = pfsp_probabilities(np.array([0.5, 0.1, 0.5, 0.5]), "squared")
    assert _close(freq["main-v1"], 0.5 * pfsp[1] + 0.5 * curriculum[1])


def test_monotonic_suffix_is_dropped() -> None:
    rates, names = remove_monotonic_suffix(np.array([0.9, 0.5, 0.8, 0.6, 0.4]), ["a", "b", "c", "d", "e"])
    assert names == ["a", "b", "c"] and rates.tolist() == [0.9, 0.5, 0.8]
    assert remove_monotonic_suffix(np.array([0.9, 0.8, 0.1]), ["a", "b", "c"])[1] == []


def test_main_exploiter_plays_the_main_agent_or_its_snapshots_as_a_curriculum() -> None:
    assert _frequencies("mx", ROSTER, Rates({("mx", "main"): 0.3})) == {"main": 1.0}
    rates = {("mx", "main"): 0.05, ("mx", "main-v0"): 0.5, ("mx", "main-v1"): 0.1}
    freq = _frequencies("mx", ROSTER, Rates(rates))
    curriculum = pfsp_probabilities(np.array([0.5, 0.1]), "variance")
    assert set(freq) == {"main-v0", "main-v1"} and _close(freq["main-v0"], curriculum[0])


def test_league_exploiter_plays_every_snapshot_by_capped_pfsp() -> None:
    rates = {("lx", "main-v0"): 0.95, ("lx", "main-v1"): 0.2, ("lx", "mx-v1"): 0.7, ("lx", "lx-v1"): 0.5}
    freq = _frequencies("lx", ROSTER, Rates(rates))
    expected = pfsp_probabilities(np.array([0.95, 0.2, 0.7, 0.5]), "linear_capped")
    for h, p in zip(ROSTER.historical, expected):
        assert _close(freq.get(h.name, 0.0), p)


def test_snapshot_rules_follow_the_role() -> None:
    rules = RoleRules(min_iterations=2, max_iterations=5, snapshot_win_rate=0.7)
    beats_all = Rates({("lx", h.name): 0.8 for h in ROSTER.historical} | {("main", h.name): 0.8 for h in ROSTER.historical})
    assert not ready_to_snapshot("lx", ROSTER, beats_all, 1, rules)  # too soon, however strong
    assert ready_to_snapshot("lx", ROSTER, beats_all, 2, rules)
    assert ready_to_snapshot("main", ROSTER, beats_all, 2, rules)
    assert not ready_to_snapshot("lx", ROSTER, Rates({}), 4, rules)  # 0.5 everywhere: not yet
    assert ready_to_snapshot("lx", ROSTER, Rates({}), 5, rules)  # time-out
    # a main exploiter is judged against the main agents only
    assert ready_to_snapshot("mx", ROSTER, Rates({("mx", "main"): 0.75}), 2, rules)
    assert not ready_to_snapshot("mx", ROSTER, Rates({("mx", "main"): 0.7}), 2, rules)
    rng = np.random.default_rng(0)
    assert not any(resets_after_snapshot("main", rules, rng) for _ in range(100))
    assert all(resets_after_snapshot("main_exploiter", rules, rng) for _ in range(100))
    share = np.mean([resets_after_snapshot("league_exploiter", rules, rng) for _ in range(N)])
    assert _close(share, 0.25)


def _alphastar_league() -> League:
    league = League(LeagueSettings(matchmaking="alphastar", k_factor=16, roles=RoleRules(min_iterations=1, max_iterations=3)))
    league.admit(0, "/ckpt/v0")
    league.add_agent("main_exploiter", "main_exploiter")
    league.add_agent("league_exploiter", "league_exploiter")
    return league


def test_league_books_agents_snapshots_and_resets(tmp_path: Path) -> None:
    league = _alphastar_league()
    rng = np.random.default_rng(0)
    assert set(league.matchmake(500, rng, "main_exploiter")) == {CURRENT}  # even with the main agent: play it
    wins = [GameResult("main_exploiter", CURRENT, 1.0)] * 40
    league.record(wins)
    summary = league.close_round(wins, 1, "main_exploiter")
    assert summary.admissible and summary.win_rate_vs_latest is None  # beats main 100% after 1 iteration
    snap = league.admit(1, "/ckpt/main_exploiter-v1", "main_exploiter")
    assert snap.name == "main_exploiter-v1" and league.latest_of("main_exploiter") == snap
    assert league.ratings[snap.name] == league.ratings["main_exploiter"] > league.starting_rating()
    assert league.reset_after_snapshot("main_exploiter", rng)  # main exploiters always start over
    assert league.ratings["main_exploiter"] == league.starting_rating()
    assert "main_exploiter" not in league.recent and CURRENT not in league.recent.get(CURRENT, {})
    assert league.results["main_exploiter"][CURRENT] == [40.0, 40.0]  # all-time results stay
    # the main agent now loses to that exploit: some of its games verify against it
    opponents = league.matchmake(2000, rng)
    assert {"main_exploiter-v1", "v0", CURRENT} <= set(opponents)
    league.save(tmp_path / "league.json")
    again = League.load(tmp_path / "league.json")
    assert again.agents == league.agents and again.since_snapshot == league.since_snapshot
    assert again.population == league.population and again.settings == league.settings
    rows = {r["policy"]: r for r in league_table(again, np.random.default_rng(0), samples=20)}
    assert rows["main_exploiter-v1"]["role"] == "main_exploiter" and rows["league_exploiter"]["role"] == "league_exploiter"
    assert rows["main_exploiter"]["win_rate_vs_previous"] is None  # it never played its snapshot


def test_retirement_keeps_every_agents_newest_snapshot() -> None:
    league = League(LeagueSettings(matchmaking="alphastar", max_snapshots=2))
    league.admit(0, "/ckpt/v0")
    league.add_agent("league_exploiter", "league_exploiter")
    league.admit(1, "/ckpt/le1", "league_exploiter")
    league.record([GameResult(CURRENT, "league_exploiter-v1", 1.0)] * 30)  # the exploiter's snapshot is now the weakest
    league.admit(2, "/ckpt/v2")
    # over the cap: v0 goes, though league_exploiter-v1 is rated lower, as it is that agent's newest
    assert [s.name for s in league.population] == ["league_exploiter-v1", "v2"]
    assert [s.name for s in league.retired] == ["v0"]


def test_self_play_games_count_once_and_leave_ratings_alone() -> None:
    from league.ratings import bradley_terry_with_intervals

    league = _alphastar_league()
    league.record([GameResult(CURRENT, CURRENT, 1.0)] * 30 + [GameResult(CURRENT, "v0", 1.0), GameResult(CURRENT, "v0", 0.0)] * 10)
    assert league.results[CURRENT][CURRENT] == [30.0, 30.0] and league.win_rate(CURRENT, "v0") == 0.5
    assert league.win_rate(CURRENT, CURRENT) == 0.5  # which side the judge favours is not strength
    rated = bradley_terry_with_intervals(league.results, np.random.default_rng(0), samples=50)
    assert abs(rated[CURRENT].rating - rated["v0"].rating) < 1e-6  # even against v0; its self-play wins ignored
    assert rated[CURRENT].low <= rated[CURRENT].rating <= rated[CURRENT].high


def test_a_cap_below_the_number_of_agents_waits_instead_of_failing() -> None:
    league = League(LeagueSettings(matchmaking="alphastar", max_snapshots=2))
    league.admit(0, "/ckpt/v0")
    for agent in ("main_exploiter", "league_exploiter"):
        league.add_agent(agent, agent)
    league.admit(1, "/ckpt/mx1", "main_exploiter")
    league.admit(1, "/ckpt/lx1", "league_exploiter")  # three snapshots, each some agent's newest
    assert len(league.population) == 3 and not league.retired
    league.admit(2, "/ckpt/v2")  # now v0 is no agent's newest: it goes, and the cap holds again at 3
    assert [s.name for s in league.retired] == ["v0"]
