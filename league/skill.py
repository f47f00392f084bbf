"""Skill-conditioned play: the same prompt under each skill tag, the tagged answers judged
pairwise, and pairs that teach each tag its level.

For a pair of levels (higher, lower) on one prompt with a decisive verdict, the higher-tagged
prompt prefers the better answer and the lower-tagged prompt the worse one, so the tag comes
to control quality; the win rate of each higher level over each lower one is reported.
"""
from __future__ import annotations

from typing import Any

import pyarrow as pa

from judge.verdict import SCORE_OF_WINNER, Verdict
from league.records import PAIR_SCHEMA

SKILL_GAME_SCHEMA = pa.schema(
    [
        ("round", pa.int32()),
        ("prompt", pa.string()),
        ("level_high", pa.string()),
        ("level_low", pa.string()),
        ("response_high", pa.string()),
        ("response_low", pa.string()),
        ("score_high", pa.float64()),
        ("score_low", pa.float64()),
        ("winner", pa.string()),
    ]
)


def skill_records(
    round_: int,
    prompts: list[str],
    matchups: list[tuple[str, str]],
    responses: dict[str, list[str]],
    verdicts: list[list[Verdict]],
) -> tuple[pa.Table, pa.Table, dict[str, float]]:
    """Games, pairs and win rate by skill pair. `matchups[k]` is (higher, lower) and
    `verdicts[k][i]` judges prompt i with the higher level's answer as side a."""
    games: list[dict[str, Any]] = []
    pairs: list[dict[str, Any]] = []
    rates: dict[str, float] = {}
    for (high, low), judged in zip(matchups, verdicts, strict=True):
        points = 0.0
        for i, (prompt, v) in enumerate(zip(prompts, judged, strict=True)):
            a, b = responses[high][i], responses[low][i]
            winner = {"a": high, "b": low, "tie": "tie"}[v.winner]
            points += SCORE_OF_WINNER[v.winner]
            games.append({
                "round": round_, "prompt": prompt, "level_high": high, "level_low": low, "response_high": a,
                "response_low": b, "score_high": v.score_a, "score_low": v.score_b, "winner": winner,
            })
            if v.winner == "tie" or a == b:
                continue
            better, worse = (a, b) if v.winner == "a" else (b, a)
            margin = abs(v.score_a - v.score_b)
            for level, chosen, rejected in ((high, better, worse), (low, worse, better)):
                pairs.append({
                    "pair_id": f"r{round_:05d}-skill-{len(pairs):06d}", "game_id": None, "round": round_,
                    "prompt": level + prompt, "chosen": chosen, "rejected": rejected, "source": "skill", "margin": margin,
                })
        rates[f"{high}>{low}"] = points / len(prompts) if prompts else 0.5
    return (
        pa.Table.from_pylist(games, schema=SKILL_GAME_SCHEMA),
        pa.Table.from_pylist(pairs, schema=PAIR_SCHEMA),
        rates,
    )
