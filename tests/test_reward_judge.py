"""The reward-model judge and model-scored principles, against the classifier run by hand."""
import math
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from cluster.config import ConfigError, parse_config
from judge.base import JudgeError
from judge.constitution import ConstitutionalJudge, Principle
from judge.registry import JudgeSpec, make_judge
from judge.reward_model import RewardModelJudge, win_probability
from judge.rules import ExactAnswerJudge
from judge.scorer import load_scorer
from prompts.chat import TEXT_FORMAT
from prompts.example import Example

PROBLEMS = [Example("1+2=", "30"), Example("4+4=", "80"), Example("9+9=", "81")]
A = ["30", "8", "81"]
B = ["31", "80", "8"]


def _classifier(tiny_model: Path, root: Path, num_labels: int) -> Path:
    torch.manual_seed(num_labels)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model, num_labels=num_labels)
    with torch.no_grad():  # a random head large enough that the logits differ clearly
        model.score.weight.normal_(0, 1.0)
    path = root / f"classifier-{num_labels}"
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def reward_model(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _classifier(tiny_model, tmp_path_factory.mktemp("rm"), 1)


def _by_hand(path: Path, prompts: list[str], responses: list[str]) -> torch.Tensor:
    """Each text alone (no padding), as TRL's RewardTrainer formats it: prompt + response + EOS."""
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    with torch.no_grad():
        return torch.cat([model(**tok(p + r + tok.eos_token, return_tensors="pt")).logits for p, r in zip(prompts, responses)])


def test_win_probability_is_bradley_terry() -> None:
    assert win_probability(0.0, 0.0) == 0.5
    assert win_probability(1.0, 0.0) == pytest.approx(1 / (1 + math.exp(-1)))
    assert win_probability(0.0, 2.0) == pytest.approx(0.11920292)


def test_verdicts_follow_the_rewards_the_model_gives(reward_model: Path) -> None:
    judge = RewardModelJudge(reward_model)
    prompts = [p.prompt for p in PROBLEMS]
    ra, rb = _by_hand(reward_model, prompts, A)[:, 0], _by_hand(reward_model, prompts, B)[:, 0]
    verdicts = judge.judge(PROBLEMS, A, B)  # batched, padded: must match the unpadded scores
    for v, a, b in zip(verdicts, ra.tolist(), rb.tolist()):
        assert v.score_a == pytest.approx(a, abs=1e-4) and v.score_b == pytest.approx(b, abs=1e-4)
        assert v.winner == ("a" if a > b else "b")
        assert f"P(a beats b) {win_probability(a, b):.3f}" in v.reason
    assert judge.score_all(PROBLEMS, A) == pytest.approx(ra.tolist(), abs=1e-4)


def test_rewards_within_the_margin_tie(reward_model: Path) -> None:
    gaps = [abs(v.score_a - v.score_b) for v in RewardModelJudge(reward_model).judge(PROBLEMS, A, B)]
    margin = sorted(gaps)[1]  # the two smallest gaps tie, the largest does not
    verdicts = RewardModelJudge(reward_model, tie_margin=margin).judge(PROBLEMS, A, B)
    assert [v.winner == "tie" for v in verdicts] == [g <= margin for g in gaps]
    assert sum(v.winner == "tie" for v in verdicts) == 2


def test_reward_model_must_have_one_label(tiny_model: Path, tmp_path: Path) -> None:
    with pytest.raises(JudgeError, match="has 2 labels; a reward model has one"):
        RewardModelJudge(_classifier(tiny_model, tmp_path, 2))
    with pytest.raises(JudgeError, match="not a Hugging Face checkpoint"):
        RewardModelJudge(tmp_path / "nothing")
    with pytest.raises(JudgeError, match="needs judge.reward_model"):
        make_judge(JudgeSpec("reward_model"))


def test_model_principle_adherence_is_the_label_probability(tiny_model: Path, tmp_path: Path) -> None:
    two = _classifier(tiny_model, tmp_path, 2)
    prompts = [p.prompt for p in PROBLEMS]
    expected = torch.softmax(_by_hand(two, prompts, A), -1)[:, 1].tolist()
    principle = Principle("helpful", model=str(two), label=1, weight=0.5)
    assert principle.adherence_all(PROBLEMS, A) == pytest.approx(expected, abs=1e-4)
    one = Principle("calm", model=str(_classifier(tiny_model, tmp_path, 1)))
    sigmoid = torch.sigmoid(_by_hand(Path(one.model), prompts, A)[:, 0]).tolist()
    assert one.adherence_all(PROBLEMS, A) == pytest.approx(sigmoid, abs=1e-4)

    judge = ConstitutionalJudge(ExactAnswerJudge(), [principle])
    verdicts = judge.judge(PROBLEMS, A, B)
    for v, e in zip(verdicts, expected):
        assert v.principles["helpful"][0] == pytest.approx(e, abs=1e-4)
    assert verdicts[0].score_a == pytest.approx(1 + 0.5 * expected[0], abs=1e-4)


def test_recipe_checks_reward_model_and_model_principles(tiny_model: Path, tmp_path: Path) -> None:
    two = _classifier(tiny_model, tmp_path, 2)
    config = parse_config({"judge": {"kind": "reward_model", "reward_model": str(_classifier(tiny_model, tmp_path, 1)), "tie_margin": 0.2,
                                      "constitution": [{"name": "helpful", "model": str(two), "label": 1}]}})
    assert config.judge.reward_model.is_absolute() and config.judge.constitution[0].model == two.resolve()
    with pytest.raises(ConfigError, match="judge kind reward_model needs reward_model"):
        parse_config({"judge": {"kind": "reward_model"}})
    with pytest.raises(ConfigError, match="has 2 labels; set label to the index"):
        parse_config({"judge": {"constitution": [{"name": "helpful", "model": str(two)}]}})
    with pytest.raises(ConfigError, match="give exactly one of rule"):
        parse_config({"judge": {"constitution": [{"name": "p", "rule": "max_length", "model": str(two), "label": 0}]}})
    with pytest.raises(ConfigError, match="not a Hugging Face checkpoint directory"):
        parse_config({"judge": {"constitution": [{"name": "p", "model": str(tmp_path / "none")}]}})


CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def test_a_reward_model_with_a_chat_template_reads_the_exchange_through_it(tiny_model: Path, tmp_path: Path) -> None:
    path = _classifier(tiny_model, tmp_path, 1)
    tok = AutoTokenizer.from_pretrained(path)
    tok.chat_template = CHATML  # the reward model's own template, whatever the policy's
    tok.save_pretrained(path)
    chat = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "1+2="}]
    problems = [Example(chat, "30"), Example("4+4=", "80")]
    rendered = [
        "<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\n1+2=<|im_end|>\n<|im_start|>assistant\n30<|im_end|>\n",
        "<|im_start|>user\n4+4=<|im_end|>\n<|im_start|>assistant\n8<|im_end|>\n",
    ]
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    with torch.no_grad():
        by_hand = [model(**tok(text, return_tensors="pt")).logits[0, 0].item() for text in rendered]
    assert RewardModelJudge(path).rewards(problems, ["30", "8"]) == pytest.approx(by_hand, abs=1e-4)
    # one trained on plain-text rows (the staged pipeline's, marked beside it) reads them as it was trained
    (path / TEXT_FORMAT).write_text("{}")
    load_scorer.cache_clear()
    with torch.no_grad():
        plain = [model(**tok(text, return_tensors="pt")).logits[0, 0].item() for text in ("be brief\n\n1+2=30" + tok.eos_token, "4+4=8" + tok.eos_token)]
    assert RewardModelJudge(path).rewards(problems, ["30", "8"]) == pytest.approx(plain, abs=1e-4)
