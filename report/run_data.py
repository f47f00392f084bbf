"""What a report reads from a run directory: only files the run writes whole (see the README's
"What a run leaves in its directory"), so it works on a run in progress, finished or resumed."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from league.league import League
from league.versions import VersionRating, version_ratings


class ReportError(ValueError):
    """The directory cannot be reported on: it says what is missing."""


@dataclass
class RunData:
    root: Path
    rows: list[dict[str, Any]]  # metrics.jsonl: iteration 0 is the starting point
    league: League | None
    versions: list[VersionRating] = field(default_factory=list)  # the per-version Bradley-Terry fit
    samples: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # round -> a few games of it
    min_distinct_2: float | None = None  # the collapse floor the run warned below


def read_run(root: Path, samples: int = 4) -> RunData:
    metrics = root / "metrics.jsonl"
    if not metrics.is_file():
        raise ReportError(f"no metrics at {str(metrics)!r}: is {str(root)!r} a run directory, and has it finished its warm-up?")
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    league = League.read(root / "league.json") if (root / "league.json").is_file() else None
    versions = version_ratings(league, root, np.random.default_rng(0), samples=100) if league is not None else []
    return RunData(root, rows, league, versions, sample_games(root, samples), _collapse_floor(root))


def sample_games(root: Path, n: int) -> dict[int, list[dict[str, Any]]]:
    """The first `n` head-to-head games of the first and of the latest round."""
    files = sorted(p for p in (root / "games").glob("round-*.parquet") if not p.name.startswith(".")) if (root / "games").is_dir() else []
    columns = ["round", "policy_a", "version_a", "policy_b", "version_b", "prompt", "response_a", "response_b", "winner", "reason"]
    picked = {}
    for path in dict.fromkeys([files[0], files[-1]]) if files else []:
        table = pq.read_table(path, columns=columns).slice(0, n)
        if table.num_rows:
            picked[table.column("round")[0].as_py()] = table.to_pylist()
    return picked


def _collapse_floor(root: Path) -> float | None:
    import yaml

    config = root / "config.yaml"
    if not config.is_file():
        return None
    return (yaml.safe_load(config.read_text()) or {}).get("eval", {}).get("min_distinct_2")
