"""The league table of a run: one row per policy, for people (a text table) and tools (CSV, JSON)."""
from __future__ import annotations

import csv
import io
import json

import numpy as np

from league.league import League
from league.ratings import bradley_terry_with_intervals

COLUMNS = ["policy", "role", "version", "retired", "elo", "bt", "bt_low", "bt_high", "games", "win_rate_vs_previous"]


def league_table(league: League, rng: np.random.Generator, samples: int = 200) -> list[dict]:
    """Snapshots by version (retired ones included, marked), then the learning agents (the
    current policy; with league roles the exploiters too). `role` is the role of the agent a
    row is or froze; `win_rate_vs_previous` is each policy's score rate against the snapshot of
    the same agent admitted just before it (None for the first)."""
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
        })
    return rows


def _rate(league: League, a: str, b: str | None) -> float | None:
    if b is None or not league.results.get(a, {}).get(b, [0, 0])[1]:
        return None
    return league.win_rate(a, b)


def render(rows: list[dict], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(rows, indent=1)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue()
    width = max([10] + [len(r["policy"]) + (7 if r.get("retired") else 0) for r in rows])
    lines = [f"{'policy':<{width}} {'version':>7} {'elo':>8} {'bradley-terry (95%)':>26} {'games':>7} {'wr-vs-prev':>10}"]
    for r in rows:
        bt = "-" if r["bt"] is None else f"{r['bt']:.1f} [{r['bt_low']:.1f}, {r['bt_high']:.1f}]"
        version = "-" if r["version"] is None else str(r["version"])
        wr = "-" if r["win_rate_vs_previous"] is None else f"{r['win_rate_vs_previous']:.3f}"
        policy = r["policy"] + (" (ret.)" if r.get("retired") else "")
        lines.append(f"{policy:<{width}} {version:>7} {r['elo']:>8.1f} {bt:>26} {r['games']:>7} {wr:>10}")
    return "\n".join(lines)
