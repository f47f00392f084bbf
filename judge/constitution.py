"""Constitutional scoring: a base judge's score plus weighted adherence to explicit principles.

score = base score + sum(weight x adherence), adherence in [0, 1] per principle. A principle's
adherence comes from a named rule registered here (a recipe names it and its options) or from
an auxiliary model (a sequence classifier: the probability of the label that means "adheres"),
so a constitution is data, checked when the recipe is read, and every verdict records the
per-principle adherence of both sides.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from judge.base import Judge, JudgeError, registrar
from judge.verdict import Verdict, verdict_from_scores
from prompts.example import Example, Prompt

Rule = Callable[..., float]
RULES: dict[str, Rule] = {}


# Register an adherence rule: `@rule("name")` on `fn(problem, response, **options) -> float in [0, 1]`.
rule = registrar(RULES)


@rule("max_length")
def _max_length(problem: Example, response: str, max_chars: int) -> float:
    """1 up to `max_chars` characters, then falling as max_chars / length."""
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, got {max_chars}")
    length = len(response.strip())
    return 1.0 if length <= max_chars else max_chars / length


@rule("matches")
def _matches(problem: Example, response: str, pattern: str) -> float:
    """1 when the whole (stripped) response matches the regular expression."""
    return 1.0 if re.fullmatch(pattern, response.strip()) else 0.0


@rule("avoids")
def _avoids(problem: Example, response: str, pattern: str) -> float:
    """1 when the regular expression occurs nowhere in the response."""
    return 0.0 if re.search(pattern, response) else 1.0


@dataclass(frozen=True)
class Principle:
    """A rule with its options, or a classifier checkpoint (`model`) and the index of the label
    meaning adherence (`label`; none for a one-logit model, whose sigmoid is the adherence)."""

    name: str
    rule: str | None = None
    weight: float = 1.0
    options: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    label: int | None = None

    def adherence(self, problem: Example, response: str) -> float:
        return self.adherence_all([problem], [response])[0]

    def adherence_all(self, problems: list[Example], responses: list[str]) -> list[float]:
        """Adherence of each response, in [0, 1]; a model principle scores them in batches."""
        if self.model is not None:
            values = model_adherence(self.model, self.label, [p.prompt for p in problems], responses)
        else:
            check = RULES[self.rule or ""]  # a principle without a model has a rule (checked when the recipe is read)
            values = [check(p, r, **self.options) for p, r in zip(problems, responses, strict=True)]
        for value in values:
            if not 0.0 <= value <= 1.0:
                source = f"rule {self.rule!r}" if self.model is None else f"model {self.model!r}"
                raise JudgeError(f"principle {self.name!r}: {source} returned {value}, outside [0, 1]")
        return values


def model_adherence(model: str, label: int | None, prompts: list[Prompt], responses: list[str]) -> list[float]:
    """The classifier's probability of `label` (softmax over labels), or sigmoid of its one logit."""
    import torch  # the scorer and torch load in the judge actor only, not when a recipe is read

    from judge.scorer import load_scorer

    logits = load_scorer(model).logits(prompts, responses)
    if label is None:
        return torch.sigmoid(logits[:, 0]).tolist()
    return torch.softmax(logits, dim=-1)[:, label].tolist()


def check_principle(
    name: str, rule_name: str | None, options: dict[str, Any], model: Path | None = None, label: int | None = None
) -> None:
    """Fail early, with what is known, when a recipe names an unknown rule, bad options or an unusable model."""
    if (rule_name is None) == (model is None):
        raise ValueError(f"principle {name!r}: give exactly one of rule (a registered rule) or model (a classifier checkpoint)")
    if model is not None:
        _check_model_principle(name, model, label)
        return
    if rule_name not in RULES:
        raise ValueError(f"principle {name!r}: unknown rule {rule_name!r}; known rules: {', '.join(sorted(RULES))}")
    try:
        for probe in ("", "a probe response"):
            value = RULES[rule_name](Example("", ""), probe, **options)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"adherence {value} is outside [0, 1]")
    except TypeError as err:
        raise ValueError(f"principle {name!r}: options {options} do not fit rule {rule_name!r} ({err})") from None
    except (re.error, ValueError, ZeroDivisionError) as err:
        raise ValueError(f"principle {name!r}: rule {rule_name!r} fails with options {options}: {err}") from None


def _check_model_principle(name: str, model: Path, label: int | None) -> None:
    from transformers import AutoConfig

    if not (model / "config.json").is_file():
        raise ValueError(f"principle {name!r}: model {str(model)!r} is not a Hugging Face checkpoint directory (no config.json)")
    labels = AutoConfig.from_pretrained(model).num_labels
    if labels == 1 and label not in (None, 0):
        raise ValueError(f"principle {name!r}: model {str(model)!r} has one logit; leave label out (adherence is its sigmoid)")
    if labels > 1 and (label is None or not 0 <= label < labels):
        raise ValueError(
            f"principle {name!r}: model {str(model)!r} has {labels} labels; set label to the index (0-{labels - 1}) "
            "of the label that means the response adheres"
        )


class ConstitutionalJudge(Judge):
    """Wraps any judge; every mode that uses a judge can use this one."""

    def __init__(self, base: Judge, principles: list[Principle]) -> None:
        self.base = base
        self.principles = principles
        self.name = f"constitutional({base.name})"

    def score(self, problem: Example, response: str) -> float:
        return self.score_all([problem], [response])[0]

    def score_all(self, problems: list[Example], responses: list[str]) -> list[float]:
        scores = self.base.score_all(problems, responses)
        for p in self.principles:
            scores = [s + p.weight * a for s, a in zip(scores, p.adherence_all(problems, responses))]
        return scores

    def judge(self, problems: list[Example], responses_a: list[str], responses_b: list[str]) -> list[Verdict]:
        base = self.base.judge(problems, responses_a, responses_b)
        per_principle = {
            p.name: (p.adherence_all(problems, responses_a), p.adherence_all(problems, responses_b)) for p in self.principles
        }
        verdicts = []
        for i, v in enumerate(base):
            adherence = {name: (a[i], b[i]) for name, (a, b) in per_principle.items()}
            score_a = v.score_a + sum(p.weight * adherence[p.name][0] for p in self.principles)
            score_b = v.score_b + sum(p.weight * adherence[p.name][1] for p in self.principles)
            margin = getattr(self.base, "tie_margin", 0.0)  # a reward model's "too close to call" still holds
            verdicts.append(verdict_from_scores(score_a, score_b, v.reason, tie_margin=margin, principles=adherence))
        return verdicts
