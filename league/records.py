"""Game records and preference pairs: their Parquet schemas, and atomic append-only writes.

Each round is one Parquet file in `games/` and one in `pairs/` per mode that made pairs
(`round-N.parquet`, `round-N-adversarial.parquet`, ...), written to a temporary name and
renamed, so a crash never leaves a half-written file that looks whole and a
reader of the directory sees whole rounds only.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROUND_ROBIN = "round_robin"  # the folder of the evaluation round-robin's games (cluster/round_robin.py), in GAME_SCHEMA

GAME_SCHEMA = pa.schema(
    [
        ("game_id", pa.string()),
        ("round", pa.int32()),
        ("mode", pa.string()),
        ("policy_a", pa.string()),
        ("version_a", pa.int32()),
        ("policy_b", pa.string()),
        ("version_b", pa.int32()),
        ("prompt", pa.string()),
        ("response_a", pa.string()),
        ("response_b", pa.string()),
        ("score_a", pa.float64()),
        ("score_b", pa.float64()),
        ("winner", pa.string()),
        ("judge", pa.string()),
        ("reason", pa.string()),
        ("principles", pa.map_(pa.string(), pa.list_(pa.float64()))),
        ("play_seconds", pa.float64()),
        ("truncated_a", pa.bool_()),  # the answer was cut off at the token limit (null: not known, e.g. older runs)
        ("truncated_b", pa.bool_()),
    ]
)

PAIR_SCHEMA = pa.schema(
    [
        ("pair_id", pa.string()),
        ("game_id", pa.string()),
        ("round", pa.int32()),
        ("prompt", pa.string()),
        ("chosen", pa.string()),
        ("rejected", pa.string()),
        ("source", pa.string()),
        ("margin", pa.float64()),
        ("chosen_truncated", pa.bool_()),  # trained on without an end of answer (null: ended)
        ("rejected_truncated", pa.bool_()),
    ]
)


def pairs_from_games(games: pa.Table) -> pa.Table:
    """Winner's response chosen, loser's rejected; ties and identical responses yield nothing."""
    rows = games.to_pylist()
    pairs = []
    for g in rows:
        if g["winner"] == "tie" or g["response_a"] == g["response_b"]:
            continue
        a_won = g["winner"] == "a"
        pairs.append(
            {
                "pair_id": f"{g['game_id']}/p",
                "game_id": g["game_id"],
                "round": g["round"],
                "prompt": g["prompt"],
                "chosen": g["response_a"] if a_won else g["response_b"],
                "rejected": g["response_b"] if a_won else g["response_a"],
                "source": g["mode"],
                "margin": abs(g["score_a"] - g["score_b"]),
                "chosen_truncated": g.get("truncated_a" if a_won else "truncated_b"),
                "rejected_truncated": g.get("truncated_b" if a_won else "truncated_a"),
            }
        )
    return pa.Table.from_pylist(pairs, schema=PAIR_SCHEMA)


def replace_atomically(path: Path, write: Callable[[Path], object]) -> Path:
    """Run `write` on a temporary name beside `path`, then rename it over `path`: readers see
    the old file or the new one, never half of either."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    write(tmp)
    os.replace(tmp, path)
    return path


def write_table_atomic(table: pa.Table, path: Path) -> Path:
    return replace_atomically(path, lambda tmp: pq.write_table(table, tmp))


def read_tables(directory: Path, schema: pa.Schema) -> pa.Table:
    """Every whole round in `directory` (temporary files skipped), in round order."""
    files = sorted(p for p in directory.glob("*.parquet") if not p.name.startswith("."))
    if not files:
        return schema.empty_table()
    return pa.concat_tables([pq.read_table(f, schema=schema) for f in files])


def games_table(
    round_: int,
    mode: str,
    policy_a: tuple[str, int],
    opponents: list[tuple[str, int]],
    prompts: list[str],
    responses_a: list[str],
    responses_b: list[str],
    verdicts: list,
    judge: str,
    play_seconds: float,
    truncated: tuple[list[bool], list[bool]] | None = None,
) -> pa.Table:
    """One row per game of this round; `verdicts` are judge.verdict.Verdict records; `truncated`
    the (side a, side b) flags of answers cut off at the token limit, where known."""
    per_game = play_seconds / max(len(prompts), 1)
    cut_a, cut_b = truncated if truncated is not None else ([None] * len(prompts), [None] * len(prompts))
    rows = [
        {
            "game_id": f"r{round_:05d}-g{i:06d}",
            "round": round_,
            "mode": mode,
            "policy_a": policy_a[0],
            "version_a": policy_a[1],
            "policy_b": opp[0],
            "version_b": opp[1],
            "prompt": prompt,
            "response_a": a,
            "response_b": b,
            "score_a": v.score_a,
            "score_b": v.score_b,
            "winner": v.winner,
            "judge": judge,
            "reason": v.reason,
            "principles": [(name, list(pair)) for name, pair in v.principles.items()],
            "play_seconds": per_game,
            "truncated_a": ta,
            "truncated_b": tb,
        }
        for i, (opp, prompt, a, b, v, ta, tb) in enumerate(
            zip(opponents, prompts, responses_a, responses_b, verdicts, cut_a, cut_b, strict=True)
        )
    ]
    return pa.Table.from_pylist(rows, schema=GAME_SCHEMA)
