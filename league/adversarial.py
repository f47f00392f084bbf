"""Adversarial filtering: many samples per prompt, scored; a wide spread marks a failure mode.

A prompt the policy sometimes gets right and sometimes wrong is where it can learn most: its
best and worst samples make a preference pair with a real margin, and the prompt joins the
failure set kept on disk for inspection and targeted evaluation.
"""
from __future__ import annotations

from typing import Any

import pyarrow as pa

from league.records import PAIR_SCHEMA

FAILURE_SCHEMA = pa.schema(
    [
        ("round", pa.int32()),
        ("prompt", pa.string()),
        ("samples", pa.int32()),
        ("mean_score", pa.float64()),
        ("spread", pa.float64()),
        ("best", pa.string()),
        ("worst", pa.string()),
    ]
)


def filter_failures(
    round_: int, prompts: list[str], responses: list[list[str]], scores: list[list[float]], threshold: float
) -> tuple[pa.Table, pa.Table]:
    """The failure set (prompts whose score spread exceeds `threshold`) and its (best, worst) pairs.

    `responses[i]` and `scores[i]` are the samples of `prompts[i]`; ties for best or worst take
    the first sample, so the result is reproducible. Samples scored NaN (their judge call
    failed) take no part.
    """
    failures: list[dict[str, Any]] = []
    pairs: list[dict[str, Any]] = []
    for prompt, outs, marks in zip(prompts, responses, scores, strict=True):
        scored = [i for i, m in enumerate(marks) if m == m]  # a sample the judge failed on (NaN) is left out
        if len(scored) < 2:
            continue
        best = max(scored, key=marks.__getitem__)
        worst = min(scored, key=marks.__getitem__)
        spread = marks[best] - marks[worst]
        if spread <= threshold or outs[best] == outs[worst]:
            continue
        failures.append({
            "round": round_, "prompt": prompt, "samples": len(outs), "mean_score": sum(marks[i] for i in scored) / len(scored),
            "spread": spread, "best": outs[best], "worst": outs[worst],
        })
        pairs.append({
            "pair_id": f"r{round_:05d}-adv{len(pairs):06d}", "game_id": None, "round": round_, "prompt": prompt,
            "chosen": outs[best], "rejected": outs[worst], "source": "adversarial", "margin": spread,
        })
    return pa.Table.from_pylist(failures, schema=FAILURE_SCHEMA), pa.Table.from_pylist(pairs, schema=PAIR_SCHEMA)
