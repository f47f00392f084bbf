"""Blind pairwise samples for human raters, and folding their verdicts back into the ratings.

Raters see a prompt and two responses in random order, never which policy wrote which; the
key that undoes the blinding is written to a separate file so it can be kept from them.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pyarrow as pa

from league.league import GameResult


class HumanEvalError(ValueError):
    """A verdict file or key that cannot be folded in; the message says what is wrong."""


VERDICTS = {"1": 1.0, "2": 0.0, "tie": 0.5}  # the score of response_1's policy


def export_blind_pairs(games: pa.Table, out_dir: Path, key_path: Path, n: int, rng: np.random.Generator) -> int:
    """Write `n` games (fewer if there are fewer) as `samples.jsonl` and `samples.csv` in
    `out_dir`, sides shuffled, and the unblinding key to `key_path`; returns how many."""
    rows = games.to_pylist()
    chosen = rng.choice(len(rows), size=min(n, len(rows)), replace=False)
    samples, key = [], []
    for i, idx in enumerate(chosen):
        g = rows[int(idx)]
        sides = [("a", g["response_a"], g["policy_a"], g["version_a"]), ("b", g["response_b"], g["policy_b"], g["version_b"])]
        if rng.random() < 0.5:
            sides.reverse()
        sample_id = f"s{i:05d}"
        samples.append({"sample_id": sample_id, "prompt": g["prompt"], "response_1": sides[0][1], "response_2": sides[1][1]})
        key.append({
            "sample_id": sample_id, "game_id": g["game_id"],
            "policy_1": sides[0][2], "version_1": sides[0][3], "policy_2": sides[1][2], "version_2": sides[1][3],
        })
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_jsonl(out_dir / "samples.jsonl", samples)
    with open(out_dir / "samples.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["sample_id", "prompt", "response_1", "response_2", "verdict"])
        writer.writeheader()
        writer.writerows({**s, "verdict": ""} for s in samples)
    key_path.parent.mkdir(parents=True, exist_ok=True)
    _write_jsonl(key_path, key)
    return len(samples)


def read_verdicts(path: Path) -> dict[str, str]:
    """sample_id -> verdict (`1`, `2` or `tie`) from a filled-in CSV or a JSONL file."""
    if path.suffix == ".csv":
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    else:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    verdicts = {}
    for row in rows:
        verdict = str(row.get("verdict", "")).strip().lower()
        if verdict == "":
            continue  # not rated yet
        if verdict not in VERDICTS:
            raise HumanEvalError(f"{path}: sample {row.get('sample_id')!r} has verdict {verdict!r}; use 1, 2 or tie")
        verdicts[str(row["sample_id"])] = verdict
    return verdicts


def verdicts_to_results(verdicts: dict[str, str], key_path: Path) -> list[GameResult]:
    """Unblind the verdicts with the key: one league result per rated sample."""
    key = {row["sample_id"]: row for row in map(json.loads, key_path.read_text().splitlines()) if row}
    unknown = sorted(set(verdicts) - set(key))
    if unknown:
        raise HumanEvalError(f"verdicts for samples {unknown[:5]} are not in the key {str(key_path)!r}; is it the key of this export?")
    return [GameResult(key[s]["policy_1"], key[s]["policy_2"], VERDICTS[v]) for s, v in verdicts.items()]


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
