"""Response diversity: distinct-n and self-BLEU over token ids, to catch mode collapse.

Both work on the policy's own token ids, so they mean the same for a character model and a
BPE model and need no tokenizer on the driver.
"""
from __future__ import annotations

import math
from collections import Counter

import numpy as np

Tokens = list[int]


def ngrams(tokens: Tokens, n: int) -> list[tuple[int, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(responses: list[Tokens], n: int) -> float:
    """Unique n-grams over all n-grams across `responses` (0 when there are none)."""
    grams = [g for r in responses for g in ngrams(r, n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def bleu(hypothesis: Tokens, references: list[Tokens], max_n: int = 4, epsilon: float = 0.1) -> float:
    """Sentence BLEU with clipped counts, brevity penalty to the closest reference length, and
    epsilon smoothing of orders with no match (Chen and Cherry's method 1)."""
    if not hypothesis or not references:
        return 0.0
    # Orders longer than the hypothesis are skipped, not counted as zero: short answers
    # (a number, a word) would otherwise score 0 against themselves.
    max_n = min(max_n, len(hypothesis))
    log_precision = 0.0
    for n in range(1, max_n + 1):
        counts = Counter(ngrams(hypothesis, n))
        total = sum(counts.values())
        best: Counter = Counter()
        for ref in references:
            best |= Counter(ngrams(ref, n))
        clipped = sum(min(c, best[g]) for g, c in counts.items())
        log_precision += math.log((clipped or epsilon) / total)
    closest = min((abs(len(r) - len(hypothesis)), len(r)) for r in references)[1]
    brevity = 1.0 if len(hypothesis) > closest else math.exp(1 - closest / len(hypothesis))
    return brevity * math.exp(log_precision / max_n)


def self_bleu(responses: list[Tokens]) -> float:
    """Mean BLEU of each response against the others: 1 when all are identical, low when varied."""
    if len(responses) < 2:
        return 0.0
    return float(np.mean([bleu(r, responses[:i] + responses[i + 1 :]) for i, r in enumerate(responses)]))


def diversity(groups: list[list[Tokens]]) -> dict[str, float]:
    """Distinct-1/2 over every response, self-BLEU within each prompt's group, averaged."""
    flat = [r for g in groups for r in g]
    return {
        "distinct_1": distinct_n(flat, 1),
        "distinct_2": distinct_n(flat, 2),
        "self_bleu": float(np.mean([self_bleu(g) for g in groups])) if groups else 0.0,
    }
