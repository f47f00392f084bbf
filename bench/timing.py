"""Timing shared by the benchmarks: one warm-up call, then the best of several."""
from __future__ import annotations

import time
from collections.abc import Callable


def best_seconds(call: Callable[[], object], repeats: int) -> float:
    """The fastest of `repeats` timed calls after one untimed warm-up (which also opens whatever
    the first call opens: engines' caches, a transfer group)."""
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)
