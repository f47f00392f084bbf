"""The league table of a run: one row per policy, for people (a text table) and tools (CSV, JSON)."""
from __future__ import annotations

import csv
import io
import json
import math

import numpy as np

from league.league import SEATS, League, seated
from league.ratings import ELO_PER_NAT, bradley_terry_with_intervals

COLUMNS = ["policy", "role", "version", "retired", "elo", "bt", "bt_low", "bt_high", "games", "win_rate_vs_previous",
           "elo_first", "elo_second", "score_first", "score_second"]


def league_table(league: League, rng: np.random.Generator, samples: int = 200) -> list[dict]:
    """Snapshots by version (retired ones included, marked), then the learning agents (the
    current policy; with league roles the exploiters too). `role` is the role of the agent a
    row is or froze; `win_rate_vs_previous` is each policy's score rate against the snapshot of
    the same agent admitted just before it (None for the first). The `_first` and `_second`
    columns are each policy's online Elo and score rate in each seat of the turn-based games
    (None without them): first-seat figures above second-seat ones show the first mover's advantage.

    (No Bradley-Terry fit per seat: seated names form two groups, a policy moving first against
    the others moving second and the other way round, linked only by a policy's games against
    itself, so the fit could not place one group against the other.)"""
    bt = bradley_terry_with_intervals(league.results, rng, samples=samples)
    snapshots = league.snapshots_by_version()
    versions = {s.name: s.version for s in snapshots}
    retired = {s.name for s in league.retired}
    lineage = [(s.name, s.player) for s in snapshots] + [(agent, agent) for agent in league.agents]
    rows = []
    for i, (name, player) in enumerate(lineage):
        previous = next((n for n, p in reversed(lineage[:i]) if p == player and n != player), None)
        rating = bt.get(name)
        rows.append({
            "policy": name,
            "role": league.agents.get(player, "main"),
            "version": versions.get(name, league.versions.get(name)),
            "retired": name in retired,
            "elo": league.ratings.get(name),
            "bt": rating.rating if rating else None,
            "bt_low": rating.low if rating else None,
            "bt_high": rating.high if rating else None,
            "games": int(sum(n for _, n in league.results.get(name, {}).values())),
            "win_rate_vs_previous": _rate(league, name, previous),
            **{f"elo_{seat}": league.seat_ratings.get(seated(name, i)) for i, seat in enumerate(SEATS)},
            **{f"score_{seat}": _seat_score(league, seated(name, i)) for i, seat in enumerate(SEATS)},
        })
    return rows


def _seat_score(league: League, name: str) -> float | None:
    cells = league.by_seat.get(name, {}).values()
    games = sum(n for _, n in cells)
    return sum(s for s, _ in cells) / games if games else None


def _rate(league: League, a: str, b: str | None) -> float | None:
    if b is None or not league.results.get(a, {}).get(b, [0, 0])[1]:
        return None
    return league.win_rate(a, b)


def render(rows: list[dict], fmt: str, first_mover: tuple[float, int] | None = None) -> str:
    """The table as `text`, `csv` or `json`; the text adds the seat columns and the first mover's
    score (`League.first_mover_score`) where there were turn-based games."""
    if fmt == "json":
        return json.dumps(rows, indent=1)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue()
    width = max([10] + [len(r["policy"]) + (7 if r.get("retired") else 0) for r in rows])
    seats = any(r.get("elo_first") is not None or r.get("elo_second") is not None for r in rows)
    header = f"{'policy':<{width}} {'version':>7} {'elo':>8} {'bradley-terry (95%)':>26} {'games':>7} {'wr-vs-prev':>10}"
    lines = [header + (f" {'elo first':>9} {'elo second':>10} {'score first':>11} {'score second':>12}" if seats else "")]
    for r in rows:
        bt = "-" if r["bt"] is None else f"{r['bt']:.1f} [{r['bt_low']:.1f}, {r['bt_high']:.1f}]"
        version = "-" if r["version"] is None else str(r["version"])
        wr = "-" if r["win_rate_vs_previous"] is None else f"{r['win_rate_vs_previous']:.3f}"
        policy = r["policy"] + (" (ret.)" if r.get("retired") else "")
        seat_columns = "".join(
            f" {'-' if r[k] is None else format(r[k], f):>{w}}"
            for k, f, w in (("elo_first", ".1f", 9), ("elo_second", ".1f", 10), ("score_first", ".3f", 11), ("score_second", ".3f", 12))
        ) if seats else ""
        lines.append(f"{policy:<{width}} {version:>7} {r['elo']:>8.1f} {bt:>26} {r['games']:>7} {wr:>10}{seat_columns}")
    if first_mover is not None:
        rate, games = first_mover
        edge = ELO_PER_NAT * math.log(rate / (1 - rate)) if 0 < rate < 1 else math.copysign(math.inf, rate - 0.5)
        lines.append(f"first mover scored {rate:.3f} over {games} turn-based games (0.5: no advantage), worth {edge:+.0f} Elo")
    return "\n".join(lines)
