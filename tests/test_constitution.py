"""Constitutional scoring: base score plus weighted principle adherence, recorded per verdict."""
import pytest

from cluster.config import ConfigError, parse_config
from judge.constitution import ConstitutionalJudge, Principle
from judge.registry import make_judge
from judge.rules import ExactAnswerJudge
from prompts.example import Example

P = Example("12+30=", "42")
CONCISE = Principle("concise", "max_length", 0.5, {"max_chars": 2})
DIGITS = Principle("digits only", "matches", 0.25, {"pattern": r"\d+"})


def test_score_is_base_plus_weighted_adherence() -> None:
    judge = ConstitutionalJudge(ExactAnswerJudge(), [CONCISE, DIGITS])
    assert judge.score(P, "42") == pytest.approx(1 + 0.5 + 0.25)
    assert judge.score(P, "42 ok") == pytest.approx(0 + 0.5 * 2 / 5 + 0)


def test_principles_break_ties_and_are_recorded_per_verdict() -> None:
    judge = make_judge("exact_answer", [CONCISE, DIGITS])
    [wrong_both, right_both] = judge.judge([P, P], ["41", "42"], ["4 1 1", "42"])
    # both wrong by the base judge: the concise, digits-only answer wins on principles
    assert wrong_both.winner == "a"
    assert wrong_both.principles == {"concise": (1.0, pytest.approx(0.4)), "digits only": (1.0, 0.0)}
    assert wrong_both.score_a == pytest.approx(0.75) and wrong_both.score_b == pytest.approx(0.2)
    assert right_both.winner == "tie"
    assert judge.name == "constitutional(exact_answer)"


def test_recipe_constitution_is_checked_when_read() -> None:
    config = parse_config({"judge": {"constitution": [{"name": "short", "rule": "max_length", "weight": 0.1, "options": {"max_chars": 4}}]}})
    assert config.judge.constitution[0].options == {"max_chars": 4}
    with pytest.raises(ConfigError, match=r"unknown rule 'polite'; known rules: avoids, matches, max_length"):
        parse_config({"judge": {"constitution": [{"name": "p", "rule": "polite"}]}})
    with pytest.raises(ConfigError, match=r"options .* do not fit rule 'max_length'"):
        parse_config({"judge": {"constitution": [{"name": "p", "rule": "max_length", "options": {"chars": 3}}]}})
