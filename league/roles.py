"""League roles in the AlphaStar manner (Vinyals et al., 2019, and its published pseudocode).

Several learning agents train at once, each with a role that decides whom it plays, when a
frozen snapshot of it joins the league, and whether it then starts over:

- **main agent**: the policy the run is for. Half its games are PFSP (squared) against every
  snapshot in the league; 15% verify it: against main exploiters' snapshots it still loses to
  (win rate under 0.3), or else its own past snapshots it has forgotten how to beat (under
  0.7, after dropping the monotonically falling tail); the rest are self-play against itself,
  or PFSP (variance) over its own snapshots while it cannot hold its own (0.3 or less).
  A snapshot joins every so often; it is never reset.
- **main exploiter**: plays the main agent to find its weaknesses, or, while it wins under
  10% of those games, PFSP (variance) over the main agent's snapshots as a curriculum. A
  snapshot joins once it beats every main agent 70% of the time (or at the time-out), and it
  is then reset to the starting (SFT) policy.
- **league exploiter**: PFSP (linear, capped) over every snapshot, to find what the whole
  league misses. A snapshot joins once it beats every snapshot 70% of the time (or at the
  time-out); it is then reset with probability 0.25.

In both admission rules, "time" is self-play iterations: no snapshot before `min_iterations`
since the agent's last one, always one after `max_iterations` (AlphaStar's 2e9 and 4e9
steps). Plain functions of the league's payoff, so every rule is unit-tested without Ray.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from league.matchmaking import PFSPWeighting, pfsp_probabilities

Role = Literal["main", "main_exploiter", "league_exploiter"]
ROLES: tuple[Role, ...] = ("main", "main_exploiter", "league_exploiter")

# AlphaStar's constants, named: the share of a main agent's games in each branch, and the
# win rates its branches and the exploiters' rules compare with.
MAIN_PFSP_SHARE = 0.5
MAIN_VERIFICATION_SHARE = 0.15
SELF_PLAY_FLOOR = 0.3  # a main agent that wins no more than this against itself needs a curriculum
EXPLOITED_BELOW = 0.3  # a main exploiter's snapshot beaten less often than this is still an exploit
FORGOTTEN_BELOW = 0.7  # an own snapshot beaten less often than this has been forgotten
EXPLOITER_CURRICULUM_BELOW = 0.1  # a main exploiter winning no more than this plays old main snapshots


@dataclass(frozen=True)
class RoleRules:
    min_iterations: int = 2
    max_iterations: int = 8
    snapshot_win_rate: float = 0.7
    league_exploiter_reset: float = 0.25


class Payoff(Protocol):
    """What the rules read of the league: a's score rate against b (0.5 where they never met)."""

    def win_rate(self, a: str, b: str, recent: bool = False) -> float: ...


@dataclass(frozen=True)
class Historical:
    """A frozen snapshot as the rules see it: its name and the agent it froze (its parent)."""

    name: str
    parent: str


@dataclass(frozen=True)
class Roster:
    """Who is in the league: the learning agents and their roles, and the snapshots in admission order."""

    agents: dict[str, Role]
    historical: Sequence[Historical]

    def with_role(self, role: Role) -> list[str]:
        return [name for name, r in self.agents.items() if r == role]

    def snapshots_of(self, parents: Sequence[str]) -> list[str]:
        return [h.name for h in self.historical if h.parent in parents]


def choose_opponent(agent: str, roster: Roster, payoff: Payoff, rng: np.random.Generator) -> str:
    """The opponent of one game of `agent`: a snapshot's name, or a learning agent's (live play)."""
    role = roster.agents[agent]
    if role == "main":
        return _main_agent_match(agent, roster, payoff, rng)
    if role == "main_exploiter":
        opponent = str(rng.choice(roster.with_role("main")))
        if payoff.win_rate(agent, opponent, recent=True) > EXPLOITER_CURRICULUM_BELOW:
            return opponent
        return _pfsp(agent, roster.snapshots_of([opponent]), payoff, "variance", rng) or opponent
    return _pfsp(agent, [h.name for h in roster.historical], payoff, "linear_capped", rng) or agent


def _main_agent_match(agent: str, roster: Roster, payoff: Payoff, rng: np.random.Generator) -> str:
    coin = rng.random()
    everyone = [h.name for h in roster.historical]
    if coin < MAIN_PFSP_SHARE and everyone:
        return _pfsp(agent, everyone, payoff, "squared", rng) or agent
    opponent = str(rng.choice(roster.with_role("main")))
    if coin < MAIN_PFSP_SHARE + MAIN_VERIFICATION_SHARE:
        verified = _verification(agent, opponent, roster, payoff, rng)
        if verified is not None:
            return verified
    if payoff.win_rate(agent, opponent, recent=True) > SELF_PLAY_FLOOR:
        return opponent
    return _pfsp(agent, roster.snapshots_of([opponent]), payoff, "variance", rng) or opponent


def _verification(agent: str, opponent: str, roster: Roster, payoff: Payoff, rng: np.random.Generator) -> str | None:
    """An exploit of the main agent not yet fixed, or a snapshot of `opponent` it has forgotten how to beat."""
    exploits = roster.snapshots_of(roster.with_role("main_exploiter"))
    rates = _rates(agent, exploits, payoff)
    if len(rates) and rates.min() < EXPLOITED_BELOW:
        return _pfsp(agent, exploits, payoff, "squared", rng)
    own = roster.snapshots_of([opponent])
    rates, own = remove_monotonic_suffix(_rates(agent, own, payoff), own)
    if len(rates) and rates.min() < FORGOTTEN_BELOW:
        return _pfsp(agent, own, payoff, "squared", rng)
    return None


def remove_monotonic_suffix(rates: np.ndarray, names: list[str]) -> tuple[np.ndarray, list[str]]:
    """Drop the tail over which win rates only fall (the newest snapshots, not yet beaten because
    they are newer, not because they were forgotten); everything when the whole list only falls."""
    for i in range(len(rates) - 1, 0, -1):
        if rates[i - 1] < rates[i]:
            return rates[: i + 1], names[: i + 1]
    return rates[:0], []


def ready_to_snapshot(agent: str, roster: Roster, payoff: Payoff, since_snapshot: int, rules: RoleRules) -> bool:
    """AlphaStar's admission rule: not before `min_iterations` since the agent's last snapshot;
    then once it beats every rival of its role more than `snapshot_win_rate` of the time (main
    agents and league exploiters: every snapshot; main exploiters: every main agent), or at
    `max_iterations` regardless."""
    if since_snapshot < rules.min_iterations:
        return False
    if since_snapshot >= rules.max_iterations:
        return True
    if roster.agents[agent] == "main_exploiter":
        rivals = roster.with_role("main")
    else:
        rivals = [h.name for h in roster.historical]
    rates = _rates(agent, rivals, payoff)
    return bool(len(rates)) and float(rates.min()) > rules.snapshot_win_rate


def resets_after_snapshot(role: Role, rules: RoleRules, rng: np.random.Generator) -> bool:
    """Main exploiters always start over from the starting policy, league exploiters with
    probability `league_exploiter_reset`, main agents never."""
    if role == "main_exploiter":
        return True
    if role == "league_exploiter":
        return bool(rng.random() < rules.league_exploiter_reset)
    return False


def _rates(agent: str, names: Sequence[str], payoff: Payoff) -> np.ndarray:
    return np.array([payoff.win_rate(agent, n, recent=True) for n in names], dtype=float)


def _pfsp(agent: str, names: list[str], payoff: Payoff, weighting: PFSPWeighting, rng: np.random.Generator) -> str | None:
    if not names:
        return None
    return names[int(rng.choice(len(names), p=pfsp_probabilities(_rates(agent, names, payoff), weighting)))]
