import math

import pytest

from cluster.diversity import bleu, distinct_n, diversity, self_bleu


def test_distinct_n_hand_computed() -> None:
    responses = [[1, 2, 3], [1, 2, 4]]
    assert distinct_n(responses, 1) == pytest.approx(4 / 6)
    assert distinct_n(responses, 2) == pytest.approx(3 / 4)  # (1,2) twice, (2,3), (2,4)
    assert distinct_n([[1]], 2) == 0.0


def test_bleu_identical_is_one_and_disjoint_is_smoothed_low() -> None:
    assert bleu([1, 2, 3, 4, 5], [[1, 2, 3, 4, 5]]) == pytest.approx(1.0)
    # no overlap at any order: every precision is epsilon / count
    disjoint = bleu([1, 2, 3, 4], [[5, 6, 7, 8]])
    expected = math.exp((math.log(0.1 / 4) + math.log(0.1 / 3) + math.log(0.1 / 2) + math.log(0.1 / 1)) / 4)
    assert disjoint == pytest.approx(expected)


def test_bleu_brevity_penalty() -> None:
    # hypothesis of 2 tokens, reference of 4: orders 1-2 match exactly, orders 3-4 are skipped;
    # the brevity penalty is e^(1 - 4/2)
    assert bleu([1, 2], [[1, 2, 3, 4]]) == pytest.approx(math.exp(1 - 4 / 2))
    # one unigram of two matches, no bigram: (1/2 * 0.1/1)^(1/2)
    assert bleu([1, 9], [[1, 2]]) == pytest.approx(math.sqrt(0.5 * 0.1))


def test_collapse_shows_in_self_bleu_and_distinct() -> None:
    collapsed = diversity([[[7, 7, 1]] * 4, [[3, 2, 1]] * 4])
    varied = diversity([[[1, 2, 3], [4, 5, 6], [7, 8, 9], [2, 4, 6]], [[9, 8, 7], [6, 5, 4], [3, 2, 1], [1, 3, 5]]])
    assert collapsed["self_bleu"] == pytest.approx(1.0)
    assert varied["self_bleu"] < 0.3
    assert varied["distinct_2"] > collapsed["distinct_2"]
    assert self_bleu([[1, 2]]) == 0.0
