"""League play with PFSP on real Ray + vLLM: opponents are drawn at the weighting's frequencies.

On the tiny model the win rates stay near 0.5, so the expected frequencies are close to
uniform here; tests/test_matchmaking.py checks the same sampling against a strongly skewed
history. This test checks the plumbing: the league actor's weights, computed from every
earlier game, are what the games of the last round followed.
"""
from pathlib import Path

import numpy as np
from conftest import tiny_run

from cluster.config import parse_config
from cluster.run import run_self_play
from judge.verdict import SCORE_OF_WINNER
from league.matchmaking import pfsp_probabilities
from league.records import GAME_SCHEMA, read_tables

GAMES = 600


def test_pfsp_opponent_frequencies_follow_the_weighting(ray_cluster, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    config = parse_config(
        tiny_run(
            run_dir,
            self_play={"iterations": 4, "games_per_iteration": GAMES},
            league={"matchmaking": "pfsp", "pfsp_weighting": "squared", "admission_threshold": 0.01, "min_admission_games": 1},
        )
    )
    run_self_play(config, show_progress=False)
    games = read_tables(run_dir / "games", GAME_SCHEMA).to_pylist()
    last = max(g["round"] for g in games)
    opponents = sorted({g["policy_b"] for g in games if g["round"] == last}, key=lambda n: int(n[1:]))
    assert len(opponents) >= 2, "the league should hold several snapshots by the last round"
    # the weights the league used in the last round come from every earlier game
    points = {name: [0.0, 0] for name in opponents}
    for g in games:
        if g["round"] < last and g["policy_b"] in points:
            points[g["policy_b"]][0] += SCORE_OF_WINNER[g["winner"]]
            points[g["policy_b"]][1] += 1
    rates = np.array([s / n if n else 0.5 for s, n in (points[o] for o in opponents)])
    expected = pfsp_probabilities(rates, "squared")
    counts = np.array([sum(1 for g in games if g["round"] == last and g["policy_b"] == o) for o in opponents])
    sigma = np.sqrt(GAMES * expected * (1 - expected))
    assert np.all(np.abs(counts - GAMES * expected) <= 5 * sigma + 1), (opponents, counts, GAMES * expected)
