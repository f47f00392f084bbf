"""Answers cut off at `generator.max_new_tokens`: reported by the generator (vLLM's finish
reason), recorded with each game and pair, counted in the metrics, trained on without an end of
answer, and, with `judge.truncation: loses`, losing to answers that ended."""
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import ray
from conftest import read_metrics, tiny_run
from transformers import AutoTokenizer

from actors.actor import generator_actor, stop_generator
from actors.generator import EngineSpec, Sampling
from cluster.config import parse_config
from cluster.run import run_self_play
from judge.verdict import Verdict, truncation_loses
from learner.learner import DPOSettings, Learner
from learner.sequences import encode_pairs


def test_a_cut_off_answer_is_encoded_without_an_end(tiny_model: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    batch = encode_pairs(tokenizer, ["1+2=", "1+2="], ["30", "30"], ended=[True, False])
    ids, mask = batch["input_ids"].tolist(), batch["completion_mask"].tolist()
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    assert ids[0][-1] == eos and sum(mask[0]) == 3  # "3", "0", EOS
    assert ids[1][-1] == pad and eos not in ids[1] and sum(mask[1]) == 2


def test_the_generator_reports_cut_off_answers_and_survives_long_seeded_batches(ray_cluster, tiny_model: Path) -> None:
    """200 seeded prompts of ~40 tokens are more than one prefill step (4096 tokens): vLLM-CPU
    would split a prefill and crash on rewinding the seeded generators, unless chunked prefill
    is off, as the generator sets it on CPU."""
    gen = generator_actor("test-truncation", EngineSpec(str(tiny_model), "float32", 64, 64 * 2**20), "current", 0)
    try:
        prompts = [f"Answer this problem now: {i} + {i} =" for i in range(200)]
        out = ray.get(gen.generate_finished.remote(prompts, Sampling(max_new_tokens=4), list(range(200))))
        assert len(out) == 200 and {cut for _, cut in out} == {True, False}  # a random model: some stop early, most run on
        ids = ray.get(gen.generate_tokens.remote(prompts, Sampling(max_new_tokens=4), list(range(200))))  # same seeds
        eos = AutoTokenizer.from_pretrained(tiny_model).eos_token_id
        assert [cut for _, cut in out] == [len(row) == 4 and row[-1] != eos for row in ids]
        again = ray.get(gen.generate_as.remote(prompts[:8], ["current"] * 8, {}, Sampling(max_new_tokens=4), list(range(8))))
        assert again == out[:8]
    finally:
        stop_generator(gen)


def test_truncation_loses_overrides_the_judge_only_where_one_side_was_cut() -> None:
    v = [Verdict("a", 1.0, 0.0, "j")] * 4
    out = truncation_loses(v, [True, False, True, False], [False, True, True, False])
    assert [o.winner for o in out] == ["b", "a", "tie", "a"]
    assert out[0].reason == "a truncated; j" and out[2].reason == "both truncated; j" and out[3] is v[3]


def test_the_learner_reads_the_flags_and_fills_them_where_missing(tiny_model: Path) -> None:
    flagged = pa.table({"prompt": ["1+2=", "2+2="], "chosen": ["30", "40"], "rejected": ["31", "41"],
                        "chosen_truncated": [False, None], "rejected_truncated": [True, False]})
    plain = pa.table({"prompt": ["3+3="], "chosen": ["60"], "rejected": ["61"]})
    learner = Learner(tiny_model, DPOSettings(batch_size=4, epochs=1))
    seen: list[list[bool]] = []
    step = learner._dpo_step
    learner._dpo_step = lambda p, c, r, ended: (seen.append(ended), step(p, c, r, ended))[1]
    stats = learner.train(flagged, plain)
    assert stats["pairs"] == 3 and len(seen) == 1
    [ended] = seen  # chosen's flags, then rejected's, in the learner's shuffled order
    assert sorted(zip(ended[:3], ended[3:])) == [(True, False), (True, True), (True, True)]


def test_a_run_records_counts_and_judges_truncation(ray_cluster, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    recipe = tiny_run(run_dir, generator={"max_new_tokens": 3}, judge={"truncation": "loses"},
                      self_play={"iterations": 1, "games_per_iteration": 64}, sft={"steps": 60})
    run_self_play(parse_config(recipe), show_progress=False)
    games = pq.read_table(run_dir / "games").to_pylist()
    assert all(isinstance(g["truncated_a"], bool) and isinstance(g["truncated_b"], bool) for g in games)
    # the character-level model: an answer cut at 3 tokens is 3 characters; one that ended has fewer
    for g in games:
        assert g["truncated_a"] == (len(g["response_a"]) == 3) and g["truncated_b"] == (len(g["response_b"]) == 3)
    one_cut = [g for g in games if g["truncated_a"] != g["truncated_b"]]
    assert one_cut and all(g["winner"] == ("b" if g["truncated_a"] else "a") for g in one_cut)
    assert all(g["winner"] == "tie" for g in games if g["truncated_a"] and g["truncated_b"])
    rows = read_metrics(run_dir)
    assert rows[1]["truncated"] == sum(g["truncated_a"] + g["truncated_b"] for g in games) and rows[0]["truncated"] == 0
    pairs = pq.read_table(run_dir / "pairs").to_pylist()
    by_game = {g["game_id"]: g for g in games}
    for p in pairs:
        g = by_game[p["game_id"]]
        a_won = g["winner"] == "a"
        assert (p["chosen_truncated"], p["rejected_truncated"]) == ((g["truncated_a"], g["truncated_b"]) if a_won
                                                                    else (g["truncated_b"], g["truncated_a"]))
    assert any(p["rejected_truncated"] for p in pairs)
