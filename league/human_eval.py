"""Blind pairwise samples for human raters, and folding their verdicts back into the ratings.

Raters see a prompt and two responses in random order, never which policy wrote which; the
key that undoes the blinding is written to a separate file so it can be kept from them.
"""
from __future__ import annotations

import csv
import hashlib
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
    rows = _csv_rows(path) if path.suffix == ".csv" else _jsonl_rows(path, "verdicts file")
    verdicts = {}
    for where, row in rows:
        if "sample_id" not in row or "verdict" not in row:
            raise HumanEvalError(f"{path}: {where} has no sample_id or no verdict; each row needs both (as human-export wrote them)")
        verdict = str(row["verdict"] if row["verdict"] is not None else "").strip().lower()
        if verdict == "":
            continue  # not rated yet
        if verdict not in VERDICTS:
            raise HumanEvalError(f"{path}: sample {row.get('sample_id')!r} has verdict {verdict!r}; use 1, 2 or tie")
        verdicts[str(row["sample_id"])] = verdict
    return verdicts


def _csv_rows(path: Path) -> list[tuple[str, dict]]:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = {"sample_id", "verdict"} - set(reader.fieldnames or [])
            if missing:
                raise HumanEvalError(
                    f"{path}: the CSV has no {' or '.join(sorted(missing))} column; fill in the samples.csv that human-export wrote"
                )
            return [(f"line {i + 2}", row) for i, row in enumerate(reader)]
    except (UnicodeDecodeError, csv.Error) as err:
        raise HumanEvalError(f"{path}: not a readable CSV ({err})") from None


def _jsonl_rows(path: Path, what: str) -> list[tuple[str, dict]]:
    """(where, row) for each non-blank line; a broken line is named by its number."""
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise HumanEvalError(f"{what} {str(path)!r} is not a text file") from None
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as err:
            raise HumanEvalError(f"{what} {str(path)!r}, line {i}: not valid JSON ({err.args[0]}); fix or remove the line") from None
        if not isinstance(row, dict):
            raise HumanEvalError(f"{what} {str(path)!r}, line {i}: a JSON object is wanted")
        rows.append((f"line {i}", row))
    return rows


KEY_FIELDS = ("sample_id", "policy_1", "policy_2")


def read_key(path: Path) -> dict[str, dict]:
    """sample_id -> the key's row, every row checked to unblind a sample."""
    key = {}
    for where, row in _jsonl_rows(path, "key"):
        missing = [f for f in KEY_FIELDS if f not in row]
        if missing:
            raise HumanEvalError(f"key {str(path)!r}, {where}: no {', '.join(missing)}; use the key human-export wrote")
        key[str(row["sample_id"])] = row
    return key


def key_digest(path: Path) -> str:
    """Names one export: verdicts are remembered as imported per export and sample."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def verdicts_to_results(verdicts: dict[str, str], key_path: Path) -> list[GameResult]:
    """Unblind the verdicts with the key: one league result per rated sample, in sample order."""
    key = read_key(key_path)
    unknown = sorted(set(verdicts) - set(key))
    if unknown:
        raise HumanEvalError(f"verdicts for samples {unknown[:5]} are not in the key {str(key_path)!r}; is it the key of this export?")
    return [GameResult(key[s]["policy_1"], key[s]["policy_2"], VERDICTS[v]) for s, v in sorted(verdicts.items())]


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
