"""The DPO objective against TRL's, and what one learner step may and may not change."""
from pathlib import Path

import pyarrow as pa
import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import DPOConfig, DPOTrainer

from learner.dpo import dpo_loss
from learner.learner import DPOSettings, Learner
from learner.sequences import encode_pairs, token_logps

PROMPTS = ["012+345=", "999+001=", "500+500=", "123+456="]
CHOSEN = ["7530", "0001", "00001", "9750"]
REJECTED = ["7531", "01", "0000", "975"]


def _perturbed(model: torch.nn.Module, scale: float) -> torch.nn.Module:
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * scale)
    return model


TERMS = [
    (["sigmoid"], [1.0], 0.0), (["sigmoid", "sft"], [1.0, 1.0], 0.0), (["ipo"], [1.0], 0.0), (["hinge"], [1.0], 0.0),
    (["robust"], [1.0], 0.2), (["bco_pair"], [1.0], 0.0), (["sppo_hard"], [1.0], 0.0), (["nca_pair"], [1.0], 0.0),
    (["apo_zero"], [1.0], 0.0), (["apo_down"], [1.0], 0.0), (["exo_pair"], [1.0], 1e-3), (["sft"], [1.0], 0.0),
    (["sigmoid", "ipo", "sft"], [0.5, 2.0, 0.3], 0.0),
]


@pytest.mark.parametrize(("loss_type", "weights", "smoothing"), TERMS, ids=lambda v: "+".join(v) if isinstance(v, list) and isinstance(v[0], str) else None)
def test_loss_equals_trl_on_the_same_batch(tiny_model: Path, tmp_path: Path, loss_type: list[str], weights: list[float], smoothing: float) -> None:
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    policy = _perturbed(AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32), 0.05)
    reference = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    args = DPOConfig(output_dir=str(tmp_path), beta=0.1, loss_type=loss_type, loss_weights=weights, label_smoothing=smoothing,
                     report_to=[], use_cpu=True)
    data = Dataset.from_list([{"prompt": p, "chosen": c, "rejected": r} for p, c, r in zip(PROMPTS, CHOSEN, REJECTED)])
    trainer = DPOTrainer(model=policy, ref_model=reference, args=args, train_dataset=data, processing_class=tokenizer)
    examples = [
        {
            "prompt_ids": tokenizer(p)["input_ids"],
            "chosen_ids": tokenizer(c, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id],
            "rejected_ids": tokenizer(r, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id],
        }
        for p, c, r in zip(PROMPTS, CHOSEN, REJECTED)
    ]
    inputs = trainer.data_collator(examples)
    trl_loss = trainer.compute_loss(trainer.model, inputs).item()

    batch = encode_pairs(tokenizer, PROMPTS + PROMPTS, CHOSEN + REJECTED)
    assert torch.equal(batch["input_ids"], inputs["input_ids"])
    assert torch.equal(batch["completion_mask"], inputs["completion_mask"])
    k = len(PROMPTS)
    with torch.no_grad():
        per_token, mask = token_logps(trainer.model, batch)
        ref = token_logps(reference, batch)[0].sum(-1)
    ours = dpo_loss(per_token[:k], per_token[k:], mask[:k], mask[k:], ref[:k], ref[k:], beta=0.1,
                    terms=list(zip(loss_type, weights)), label_smoothing=smoothing)
    assert ours.loss.item() == pytest.approx(trl_loss, abs=1e-5)


def test_every_loss_type_the_recipe_takes_is_computed() -> None:
    from typing import get_args

    from cluster.config import DPOLossType
    from learner.dpo import LOSS_TYPES

    assert set(get_args(DPOLossType)) == set(LOSS_TYPES)
    assert {"sigmoid", "ipo", "hinge", "robust", "bco_pair", "sppo_hard", "nca_pair", "apo_zero", "sft"} <= set(LOSS_TYPES)


def test_sppo_square_loss_by_hand() -> None:
    """SPPO (Wu et al., 2024, eq. 4.7) with the winner's probability 1 and the loser's 0, eta = 1/beta:
    (log-ratio of the winner - eta/2)^2 + (log-ratio of the loser + eta/2)^2, averaged over pairs."""
    beta = 0.5  # eta/2 = 1
    chosen = torch.tensor([[-1.0, -0.5], [-2.0, 0.0]])  # sums -1.5 and -2.0
    rejected = torch.tensor([[-3.0, 0.0], [-1.0, -1.0]])  # sums -3.0 and -2.0
    mask = torch.tensor([[1, 1], [1, 0]])
    ref_chosen, ref_rejected = torch.tensor([-2.0, -1.0]), torch.tensor([-1.0, -3.0])
    # log-ratios: chosen 0.5 and -1.0; rejected -2.0 and 1.0
    expected = ((0.5 - 1) ** 2 + (-2.0 + 1) ** 2 + (-1.0 - 1) ** 2 + (1.0 + 1) ** 2) / 2
    out = dpo_loss(chosen, rejected, mask, mask, ref_chosen, ref_rejected, beta, [("sppo_hard", 1.0)])
    assert out.loss.item() == pytest.approx(expected)
    assert out.reward_accuracy == 0.5  # the first pair's margin is 2.5, the second's -2.0


def test_a_step_changes_every_trainable_parameter_and_not_the_reference(tiny_model: Path) -> None:
    learner = Learner(tiny_model, DPOSettings(batch_size=8, epochs=1, ref_refresh_every=0))
    before = {k: v.clone() for k, v in learner.policy.state_dict().items()}
    ref_before = {k: v.clone() for k, v in learner.reference.state_dict().items()}
    pairs = pa.table({"prompt": PROMPTS, "chosen": CHOSEN, "rejected": REJECTED})
    stats = learner.train(pairs)
    assert stats["steps"] == 1 and stats["pairs"] == 4
    assert learner.version == 1
    for name, param in learner.policy.named_parameters():
        assert not torch.equal(param.detach(), before[name]), f"{name} did not change"
    for name, tensor in learner.reference.state_dict().items():
        assert torch.equal(tensor, ref_before[name]), f"reference {name} changed"
    assert all(not p.requires_grad for p in learner.reference.parameters())


def test_no_pairs_no_step_and_reference_refresh(tiny_model: Path) -> None:
    learner = Learner(tiny_model, DPOSettings(batch_size=8, ref_refresh_every=2))
    pairs = pa.table({"prompt": PROMPTS, "chosen": CHOSEN, "rejected": REJECTED})
    learner.train(pairs)  # first iteration: a step, no refresh yet
    assert learner.version == 1
    assert any(not torch.equal(t, learner.policy.state_dict()[k]) for k, t in learner.reference.state_dict().items())
    empty = pairs.slice(0, 0)
    assert learner.train(empty)["steps"] == 0 and learner.version == 1  # second: no pairs, no step, but the refresh
    for name, tensor in learner.reference.state_dict().items():
        assert torch.equal(tensor, learner.policy.state_dict()[name])


def test_sft_teaches_a_fixed_answer(tiny_model: Path) -> None:
    learner = Learner(tiny_model, DPOSettings())
    assert learner.greedy(["1+1=", "1+2="], 4)[0] != "2"
    learner.sft_steps([(["1+1="] * 8, ["2"] * 8)] * 30, learning_rate=1e-2)
    assert learner.greedy(["1+1=", "12+1=", "1+1="], 4) == ["2", learner.greedy(["12+1="], 4)[0], "2"]


def test_micro_batches_accumulate_to_the_whole_batch_step(tiny_model: Path) -> None:
    """A token budget splits the batch into micro-batches; the accumulated step is the same step."""
    prompts = ["1+1=", "12+3=", "5+5=", "100+200=", "7+1=", "3+3="]
    pairs = pa.table({"prompt": prompts, "chosen": ["2", "51", "01", "003", "8", "6"], "rejected": ["3", "5", "0", "3000", "9", "66"]})
    whole = Learner(tiny_model, DPOSettings(batch_size=6, epochs=1, learning_rate=1e-2, max_grad_norm=1e6))  # no clipping to hide a scale
    split = Learner(tiny_model, DPOSettings(batch_size=6, epochs=1, learning_rate=1e-2, max_grad_norm=1e6, micro_batch_tokens=40,
                                            gradient_checkpointing=True))
    lengths = encode_pairs(split.tokenizer, prompts * 2, pairs.column("chosen").to_pylist() + pairs.column("rejected").to_pylist())
    per_row = lengths["attention_mask"].sum(-1).tolist()
    assert len(split._micro_batches([(2, max(per_row[i], per_row[6 + i])) for i in range(6)])) > 2 and split.policy.is_gradient_checkpointing
    a, b = whole.train(pairs), split.train(pairs)
    assert a["loss"] == pytest.approx(b["loss"], rel=1e-5) and a["nll"] == pytest.approx(b["nll"], rel=1e-5)
    assert a["reward_accuracy"] == pytest.approx(b["reward_accuracy"])
    # the step's gradients (kept on the parameters until the next step) are the whole batch's
    for (name, x), y in zip(whole.policy.named_parameters(), split.policy.parameters()):
        torch.testing.assert_close(x.grad, y.grad, rtol=1e-4, atol=1e-7, msg=name)


def test_bf16_autocast_runs_the_same_step_in_lower_precision(tiny_model: Path) -> None:
    """`precision: bf16` puts the forward passes under autocast (the path a GPU takes by default);
    the weights stay fp32 and the loss is the fp32 one to bf16's accuracy. `auto` on a CPU is fp32."""
    pairs = pa.table({"prompt": ["1+1=", "12+3=", "5+5="], "chosen": ["2", "15", "10"], "rejected": ["3", "51", "01"]})
    settings = dict(batch_size=3, epochs=1, learning_rate=1e-2)
    fp32, auto, bf16 = (Learner(tiny_model, DPOSettings(**settings, precision=p)) for p in ("fp32", "auto", "bf16"))
    a, b, c = fp32.train(pairs), auto.train(pairs), bf16.train(pairs)
    assert a["loss"] == b["loss"]  # no autocast on a CPU unless asked
    assert c["loss"] == pytest.approx(a["loss"], rel=0.05) and c["loss"] != a["loss"]  # bf16 matmuls: close, not equal
    assert all(p.dtype == torch.float32 for p in bf16.policy.parameters())


class _NoLogitsToKeep(torch.nn.Module):
    """A causal LM whose forward takes no `logits_to_keep` (older or custom architectures)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.device = model.device

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, use_cache: bool) -> object:
        return self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=use_cache)


def test_token_logps_computes_logits_only_where_an_answer_is_scored(tiny_model: Path) -> None:
    """Prompts of different lengths: logits from the earliest answer's scoring position on, and
    each token's log-probability equal to the whole batch's log_softmax, with or without
    `logits_to_keep` in the model's forward."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    model = _perturbed(AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32), 0.05)
    batch = encode_pairs(tokenizer, ["12+345=", "1+1=", "123+4567="], ["357", "2", "4690"])
    ids, widths = batch["input_ids"], []
    model.register_forward_hook(lambda module, args, out: widths.append(out.logits.shape[1]))
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=batch["attention_mask"]).logits
        mask = batch["completion_mask"][:, 1:].float()
        expected = torch.log_softmax(logits[:, :-1], -1).gather(-1, ids[:, 1:, None]).squeeze(-1) * mask
        kept, kept_mask = token_logps(model, batch)
        whole, _ = token_logps(_NoLogitsToKeep(model), batch)
    first_answer = int(batch["completion_mask"].any(0).nonzero()[0])  # "1+1=" is the shortest prompt
    assert widths == [ids.shape[1], ids.shape[1] - first_answer + 1, ids.shape[1]]
    assert kept.shape == expected.shape and torch.equal(kept_mask, mask)
    torch.testing.assert_close(kept, expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(whole, expected, rtol=0, atol=1e-5)
    assert (kept[mask.bool()] < 0).all() and (kept[~mask.bool()] == 0).all()
