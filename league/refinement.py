"""Iterative refinement's records: every (original, critique, improved) step kept as a trace,
and a preference pair wherever the judge tells the two answers apart.

The traces are data in their own right (critique-and-revise supervision); the pairs teach the
policy which of its own two attempts was better, in whichever direction the revision went.
"""
from __future__ import annotations

import pyarrow as pa

from judge.verdict import Verdict
from league.records import PAIR_SCHEMA

TRACE_SCHEMA = pa.schema(
    [
        ("round", pa.int32()),
        ("prompt", pa.string()),
        ("iteration", pa.int32()),
        ("original", pa.string()),
        ("critique", pa.string()),
        ("improved", pa.string()),
        ("score_original", pa.float64()),
        ("score_improved", pa.float64()),
        ("winner", pa.string()),
    ]
)


def refinement_records(
    round_: int,
    step: int,
    prompts: list[str],
    originals: list[str],
    critiques: list[str],
    improved: list[str],
    verdicts: list[Verdict],
) -> tuple[pa.Table, pa.Table]:
    """Traces of one refinement step (`step` counts from 1) and the pairs it yields; in each
    verdict side a is the original and side b the improved answer."""
    traces, pairs = [], []
    for i, (prompt, orig, crit, imp, v) in enumerate(zip(prompts, originals, critiques, improved, verdicts, strict=True)):
        winner = {"a": "original", "b": "improved", "tie": "tie"}[v.winner]
        traces.append({
            "round": round_, "prompt": prompt, "iteration": step, "original": orig, "critique": crit,
            "improved": imp, "score_original": v.score_a, "score_improved": v.score_b, "winner": winner,
        })
        if v.winner != "tie" and orig != imp:
            better, worse = (orig, imp) if v.winner == "a" else (imp, orig)
            pairs.append({
                "pair_id": f"r{round_:05d}-ref{step}-{i:06d}", "game_id": None, "round": round_, "prompt": prompt,
                "chosen": better, "rejected": worse, "source": "refinement", "margin": abs(v.score_a - v.score_b),
            })
    return pa.Table.from_pylist(traces, schema=TRACE_SCHEMA), pa.Table.from_pylist(pairs, schema=PAIR_SCHEMA)
