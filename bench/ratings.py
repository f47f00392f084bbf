"""Ratings at league scale, measured side by side in one run.

    pip install scikit-learn                      # once: the reference fit (the `bench` extra)
    python bench/ratings.py                       # 1,000,000 games among 1,000 policies
    python bench/ratings.py --games 100000 --policies 200 --samples 20

1. Bradley-Terry (league/ratings.py, minorization-maximization on the pair matrix) against the
   logistic-regression approach (scikit-learn, one weighted row per side of each pairing) on
   the same games: seconds of each, their ratio, and the largest rating difference in Elo.
   Then the same fit with bootstrap intervals (`--samples` refits).
2. The league's online Elo update and matchmaking (PFSP and near-skill) per game with 10,
   100 and 1,000 snapshots.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from league.league import CURRENT, GameResult, League, LeagueSettings  # noqa: E402
from league.ratings import ELO_PER_NAT, bradley_terry, bradley_terry_with_intervals, simulate_games  # noqa: E402


def logistic_regression(score: np.ndarray, games: np.ndarray) -> np.ndarray:
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        sys.exit("bench/ratings.py compares against scikit-learn, which the project's install leaves out "
                 "(transformers imports it in every process when present): pip install scikit-learn")
    i, j = np.nonzero(np.triu(games, 1))
    n, k = len(i), len(score)
    rows = np.repeat(np.arange(2 * n), 2)
    cols = np.stack([np.concatenate([i, i]), np.concatenate([j, j])], axis=1).ravel()
    vals = np.tile([1.0, -1.0], 2 * n)
    x = sp.csr_matrix((vals, (rows, cols)), shape=(2 * n, k))
    y = np.concatenate([np.ones(n), np.zeros(n)])
    w = np.concatenate([score[i, j], games[i, j] - score[i, j]])
    model = LogisticRegression(C=1e12, fit_intercept=False, tol=1e-10, max_iter=10_000).fit(x, y, sample_weight=w)
    coef = model.coef_[0]
    return 1000 + ELO_PER_NAT * (coef - coef.mean())


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def bench_fit(policies: int, games: int, samples: int) -> None:
    rng = np.random.default_rng(0)
    strengths = rng.normal(1000, 150, policies)
    score, count = simulate_games(strengths, games, rng)
    ours, t_ours = timed(bradley_terry, score, count, prior=0.0)
    ref, t_ref = timed(logistic_regression, score, count)
    order = np.corrcoef(np.argsort(np.argsort(ours)), np.argsort(np.argsort(strengths)))[0, 1]
    print(f"Bradley-Terry fit, {games:,} games among {policies:,} policies")
    print(f"  minorization-maximization  {t_ours:8.2f} s")
    print(f"  logistic regression        {t_ref:8.2f} s")
    print(f"  time ratio (LR / ours)     {t_ref / t_ours:8.1f}x")
    print(f"  max |ours - LR|            {np.max(np.abs(ours - ref)):8.3f} Elo")
    print(f"  rank correlation with the true strengths {order:.4f}")
    names = [f"p{k}" for k in range(policies)]
    results = {names[a]: {names[b]: [score[a, b], count[a, b]] for b in np.nonzero(count[a])[0]} for a in range(policies)}
    rated, t_ci = timed(bradley_terry_with_intervals, results, rng, samples=samples, prior=0.0)
    width = np.median([r.high - r.low for r in rated.values()])
    print(f"  with {samples} bootstrap refits  {t_ci:8.2f} s  (median 95% interval width {width:.1f} Elo)")


def bench_league(sizes: list[int], games: int = 20_000) -> None:
    print(f"League cost per game ({games:,} games per measurement)")
    print(f"  {'snapshots':>9} {'Elo update':>12} {'PFSP matchmaking':>17} {'near-skill':>12}")
    rng = np.random.default_rng(1)
    for size in sizes:
        rows = []
        for kind in ("pfsp", "near_skill"):
            league = League(LeagueSettings(matchmaking=kind))
            for v in range(size):
                league.admit(v, f"/ckpt/v{v}")
            opponents = league.matchmake(games, rng)
            results = [GameResult(CURRENT, o, float(rng.random() < 0.5)) for o in opponents]
            _, t_elo = timed(league.record, results)
            _, t_match = timed(lambda lg=league: [lg.matchmake(1, rng) for _ in range(games // 10)])
            rows.append((t_elo / games, t_match / (games // 10)))
        (elo, pfsp), (_, near) = rows
        print(f"  {size:9d} {elo * 1e6:10.2f}us {pfsp * 1e6:15.1f}us {near * 1e6:10.1f}us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--games", type=int, default=1_000_000)
    parser.add_argument("--policies", type=int, default=1_000)
    parser.add_argument("--samples", type=int, default=20, help="bootstrap refits for the intervals")
    args = parser.parse_args()
    bench_fit(args.policies, args.games, args.samples)
    bench_league([10, 100, 1000])


if __name__ == "__main__":
    main()
