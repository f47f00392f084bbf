"""Rule verifiers: numbers pulled out of free text, normalized and regex matches, the registry."""
import pytest

from cluster.config import ConfigError, parse_config
from judge.base import JudgeError
from judge.registry import JudgeSpec, make_judge
from judge.rules import VERIFIERS, extract_number, normalized_match, numeric, parse_number, regex, verifier
from prompts.example import Example


@pytest.mark.parametrize(
    "text, value",
    [("42", 42.0), ("-1,234.5", -1234.5), ("3/4", 0.75), ("1e-3", 0.001), (" 7 ", 7.0), ("abc", None), ("1/0", None)],
)
def test_numbers_as_people_write_them(text: str, value: float | None) -> None:
    assert parse_number(text) == value


def test_the_number_a_response_gives() -> None:
    text = r"First 3 apples, then 5 more: 3 + 5 = 8, so \boxed{8} and not 9."
    assert extract_number(text, "last") == 9
    assert extract_number(text, "first") == 3
    assert extract_number(text, "boxed") == 8
    assert extract_number("no boxed answer 4", "boxed") is None
    assert extract_number("the total is 1,250,000 dollars") == 1_250_000
    assert extract_number("half: 1/2") == 0.5


def test_numeric_tolerances() -> None:
    assert numeric("The answer is 3.1416", "3.14159", tolerance=1e-3)
    assert not numeric("The answer is 3.1416", "3.14159", tolerance=1e-6)
    assert numeric("about 1010", "1000", tolerance=0, relative_tolerance=0.01)
    assert not numeric("about 1011", "1000", tolerance=0, relative_tolerance=0.01)
    assert not numeric("no number here", "5")
    with pytest.raises(JudgeError, match="reference answer 'five' is not a number"):
        numeric("5", "five")


def test_normalized_and_regex_matches() -> None:
    assert normalized_match("The Eiffel  tower.", "eiffel Tower")
    assert not normalized_match("The Eiffel tower", "eiffel Tower", case_sensitive=True)
    assert not normalized_match("Eiffel towers", "Eiffel tower")
    assert regex(" 2024-11-25 ", r"\d{4}-\d{2}-\d{2}")
    assert not regex("on 2024-11-25", r"\d{4}-\d{2}-\d{2}")  # the whole response must match
    assert regex("YES", "yes", ignore_case=True)


def test_recipe_names_a_verifier_and_its_options() -> None:
    config = parse_config({"judge": {"kind": "numeric", "options": {"extract": "boxed", "tolerance": 0.01}}})
    judge = make_judge(JudgeSpec(config.judge.kind, config.judge.options))
    [v] = judge.judge([Example("pi to two places?", "3.14")], [r"\boxed{3.141}"], ["3.141"])
    assert (v.winner, v.score_a, v.score_b) == ("a", 1.0, 0.0)  # b has no boxed answer
    with pytest.raises(ConfigError, match="do not fit verifier 'numeric'"):
        parse_config({"judge": {"kind": "numeric", "options": {"tol": 0.1}}})
    with pytest.raises(ConfigError, match="extract must be last, first or boxed"):
        parse_config({"judge": {"kind": "numeric", "options": {"extract": "middle"}}})
    with pytest.raises(ConfigError, match="unknown judge kind 'oracle'; known kinds: exact_answer, math, normalized_match, numeric, regex"):
        parse_config({"judge": {"kind": "oracle"}})


def test_registered_verifiers_become_judge_kinds() -> None:
    @verifier("palindrome")
    def palindrome(response: str, answer: str) -> bool:
        return response.strip() == response.strip()[::-1]

    try:
        config = parse_config({"judge": {"kind": "palindrome"}})
        judge = make_judge(JudgeSpec(config.judge.kind))
        assert [v.winner for v in judge.judge([Example("?", ""), Example("?", "")], ["abba", "ab"], ["abc", "aa"])] == ["a", "b"]
    finally:
        VERIFIERS.pop("palindrome")


MATH_CASES = [
    (r"The answer is \boxed{\frac{1}{2}}", "0.5", True),
    (r"so $x = \frac{6}{8}$", r"\frac{3}{4}", True),
    (r"\boxed{1+2x}", "2x+1", True),
    (r"\boxed{\sqrt{2}}", "2^{1/2}", True),
    (r"\boxed{41}", "42", False),
    (r"\boxed{2x-1}", "2x+1", False),
    ("", "1", False),
]


def test_math_verifier_accepts_equivalent_forms_only() -> None:
    for response, answer, expected in MATH_CASES:
        assert VERIFIERS["math"](response, answer) is expected, (response, answer)
    with pytest.raises(ConfigError, match="timeout_s"):
        parse_config({"judge": {"kind": "math", "options": {"timeout_s": 0}}})


def test_math_verifier_runs_inside_a_ray_actor(ray_cluster) -> None:
    """math-verify's own timeouts use signal.alarm, which raises off the main thread; ours do not."""
    import ray

    from judge.actor import judge_actor

    judge = judge_actor("test-math-judge", JudgeSpec("math"))
    problems = [Example("?", answer) for _, answer, _ in MATH_CASES]
    scores = ray.get(judge.score.remote(problems, [response for response, _, _ in MATH_CASES]))
    ray.kill(judge)
    assert scores == [1.0 if expected else 0.0 for _, _, expected in MATH_CASES]
