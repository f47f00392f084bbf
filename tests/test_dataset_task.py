"""The `dataset` task kind: a user's prompts from files or saved datasets, with a column mapping,
a fixed held-out split, and bad data refused with the file, the row and what to fix."""
import json
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import read_metrics
from transformers import AutoModelForCausalLM, AutoTokenizer

from cluster.cli import main
from cluster.config import ConfigError, parse_config
from cluster.run import run_self_play
from tasks.base import metric

ROWS = [{"q": f"{i}+{i % 3}=", "a": str(i + i % 3)[::-1] + "0" * (2 - len(str(i + i % 3))), "part": "test" if i % 4 == 0 else "train"}
        for i in range(10)]  # the tiny model's 1-digit addition, written as the built-in task writes it


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _task(path: Path, **extra) -> dict:
    return {"kind": "dataset", "path": str(path), "columns": {"prompt": "q", "reference": "a"}, **extra}


def test_every_format_gives_the_same_examples(tmp_path: Path) -> None:
    jsonl = _jsonl(tmp_path / "d.jsonl", ROWS)
    parquet = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pylist(ROWS), parquet)
    saved = tmp_path / "saved"
    datasets.Dataset.from_list(ROWS).save_to_disk(str(saved))
    splits = tmp_path / "splits"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(ROWS)}).save_to_disk(str(splits))
    built = [parse_config({"task": _task(p, split_column="part")}).task.build(0) for p in (jsonl, parquet, saved, splits)]
    for task in built:
        assert task.held_out() == built[0].held_out() and task.pool == built[0].pool
    assert [e.prompt for e in built[0].held_out()] == ["0+0=", "4+1=", "8+2="]
    assert all(e.reference == r["a"] for e, r in zip(built[0].held_out(), ROWS[::4]))
    assert parse_config({"task": _task(jsonl)}).task.metric == "exact_answer"  # the judge's verifier


def test_held_out_split_by_file_or_stable_hash_and_seeded_sizes(tmp_path: Path) -> None:
    rows = [{"q": f"question {i}", "a": str(i), "id": f"q{i}"} for i in range(200)]
    path = _jsonl(tmp_path / "d.jsonl", rows)
    spec = _task(path, columns={"prompt": "q", "reference": "a", "id": "id"}, held_out_every=5, train_size=50, held_out_size=10)
    task = parse_config({"task": spec}).task.build(0)
    held_ids = {e.id for e in task.held_out()}
    assert len(held_ids) == 10 and len(task.pool) == 50 and not held_ids & {e.id for e in task.pool}
    # adding rows moves no row across the split (a hash of the id, not a position)
    more = _jsonl(tmp_path / "more.jsonl", rows + [{"q": f"question {i}", "a": str(i), "id": f"q{i}"} for i in range(200, 300)])
    bigger = parse_config({"task": {**spec, "path": str(more), "held_out_size": 1000, "train_size": None}}).task.build(0)
    assert held_ids <= {e.id for e in bigger.held_out()}
    assert task.held_out() == parse_config({"task": spec}).task.build(0).held_out()  # seeded
    splits = tmp_path / "splits"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows[:5]), "test": datasets.Dataset.from_list(rows[5:8])}).save_to_disk(str(splits))
    by_split = {**spec, "path": str(splits), "held_out_path": str(splits), "train_size": None}
    assert [e.id for e in parse_config({"task": by_split}).task.build(0).held_out()] == ["q5", "q6", "q7"]  # held_out_split: test
    with pytest.raises(ConfigError, match="rows also in"):
        parse_config({"task": {**by_split, "held_out_split": "train"}})
    second = _jsonl(tmp_path / "held.jsonl", [{"q": "other", "a": "1", "id": "x"}])
    assert [e.id for e in parse_config({"task": {**spec, "held_out_path": str(second)}}).task.build(0).held_out()] == ["x"]
    draw = task.train(4, np.random.default_rng(3))
    assert draw == task.train(4, np.random.default_rng(3)) and all(e in task.pool for e in draw)


def test_a_warm_up_needs_references_and_the_code_judge_needs_tests(tmp_path: Path, tiny_model: Path) -> None:
    path = _jsonl(tmp_path / "open.jsonl", [{"q": f"Write a poem about {i}.", "t": "assert True"} for i in range(20)])
    with pytest.raises(ConfigError, match="task metric exact_answer checks answers against references"):
        parse_config({"task": {"kind": "dataset", "path": str(path), "columns": {"prompt": "q"}, "metric": "exact_answer"}})
    with pytest.raises(ConfigError, match="no reference answers to warm up on"):
        parse_config({"task": {"kind": "dataset", "path": str(path), "columns": {"prompt": "q", "tests": "t"}, "metric": "code",
                               "held_out_every": 2},
                      "judge": {"kind": "reward_model", "reward_model": str(tiny_model)}})
    with pytest.raises(ConfigError, match="judge kind exact_answer checks answers against reference answers"):
        parse_config({"task": {"kind": "dataset", "path": str(path), "columns": {"prompt": "q", "tests": "t"}, "metric": "code",
                               "held_out_every": 2}, "sft": {"steps": 0}})
    with pytest.raises(ConfigError, match="does not fit metric numeric"):
        parse_config({"task": _task(_jsonl(tmp_path / "words.jsonl", [{"q": f"Capital {i}?", "a": "Paris"} for i in range(20)])),
                      "judge": {"kind": "numeric"}})
    with pytest.raises(ConfigError, match="judge kind code runs each example's unit tests"):
        parse_config({"task": _task(_jsonl(tmp_path / "d.jsonl", ROWS)), "judge": {"kind": "code"}, "sft": {"steps": 0}})
    rows = [{"q": f"Write add(a, b), case {i}.", "t": f"assert add({i}, 1) == {i + 1}"} for i in range(20)]
    code = {"kind": "dataset", "path": str(_jsonl(tmp_path / "c.jsonl", rows)), "columns": {"prompt": "q", "tests": "t"}, "held_out_every": 2}
    task = parse_config({"task": code, "judge": {"kind": "code"}, "sft": {"steps": 0}}).task.build(0)
    example = task.held_out()[0]
    assert task.score(example, "def add(a, b):\n    return a + b") == 1.0 and task.score(example, "def add(a, b): return a") == 0.0


def test_chat_columns_and_system_prompts(tmp_path: Path) -> None:
    rows = [{"messages": [{"role": "user", "content": f"Say {i}."}], "sys": "Be brief.", "answer": i} for i in range(12)]
    spec = {"kind": "dataset", "path": str(_jsonl(tmp_path / "c.jsonl", rows)), "held_out_every": 2,
            "columns": {"messages": "messages", "system": "sys", "reference": "answer"}}
    task = parse_config({"task": spec, "judge": {"kind": "numeric"}}).task.build(0)
    example = task.held_out()[0]
    assert example.prompt[0] == {"role": "system", "content": "Be brief."} and example.prompt[1]["role"] == "user"
    assert task.score(example, f"It is {example.reference}.") == 1.0 and task.score(example, "no") == 0.0


@pytest.mark.parametrize(
    "content, columns, message",
    [
        ('{"q": "1+1=", "a": "2"}\n{"q": "2+2=", "a": \n', None, r"bad\.jsonl: line 2 is not JSON"),
        ("", None, r"bad\.jsonl: no rows"),
        ('{"q": 7, "a": "2"}\n', None, r"bad\.jsonl, row 1: column 'q' must be non-empty text, not 7"),
        ('{"q": "1+1=", "a": "2"}\n', {"prompt": "question"}, r"row 1: no column 'question' \(columns: q, a\); set task.columns"),
        ('[1, 2]\n', None, r"line 1 is a JSON list, not an object"),
    ],
)
def test_bad_data_is_refused_before_anything_is_written(tmp_path: Path, capsys, content: str, columns, message: str) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(content)
    task = _task(bad) if columns is None else {**_task(bad), "columns": columns}
    with pytest.raises(ConfigError, match=message):
        parse_config({"task": task})
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps({"task": task, "run_dir": str(tmp_path / "run")}))
    assert main(["run", str(recipe)]) != 0
    assert "task:" in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_a_run_on_a_dataset_warms_up_plays_and_reports_the_task_metric(ray_cluster, tmp_path: Path) -> None:
    rows = [{"q": f"{a}+{b}=", "a": f"{a + b:02d}"[::-1], "part": "test" if (a + b) % 5 == 0 else "train"}
            for a in range(10) for b in range(10)]
    path = _jsonl(tmp_path / "sums.jsonl", rows)
    config = parse_config({
        "run_dir": str(tmp_path / "run"),
        "task": {**_task(path, split_column="part"), "held_out_size": 16},
        "model": {"tiny": {"hidden_size": 64, "num_layers": 2, "num_heads": 2, "intermediate_size": 128}},
        "sft": {"steps": 150, "learning_rate": 3e-3, "stop_at_accuracy": None},
        "self_play": {"iterations": 1, "games_per_iteration": 64},
        "generator": {"snapshot_replicas": 0},
    })
    summary = run_self_play(config, show_progress=False)
    rows_out = read_metrics(tmp_path / "run")
    games = pq.read_table(tmp_path / "run" / "games").to_pylist()
    held = {r["q"] for r in rows if r["part"] == "test"}
    assert len(games) == 64 and not {g["prompt"] for g in games} & held  # never trains on the held-out split
    assert summary["initial_accuracy"] == rows_out[0]["accuracy"]
    # the reported metric is the task's, on the weights the generators serve: recomputed with transformers
    task = config.task.build(config.seed)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "run" / "state" / "learner" / "policy")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "state" / "learner" / "policy").eval()
    answers = []
    for example in task.held_out():
        ids = tokenizer(example.prompt, return_tensors="pt")["input_ids"]
        answers.append(tokenizer.decode(model.generate(ids, max_new_tokens=8, do_sample=False)[0, ids.shape[1]:], skip_special_tokens=True))
    assert len(task.held_out()) == 16 and rows_out[1]["accuracy"] == metric(task, task.held_out(), answers)


def test_a_job_ships_project_paths_relative_to_the_project(tmp_path: Path) -> None:
    """The recipe check makes paths absolute; a Ray job unpacks the project elsewhere, so paths
    inside it travel relative to it, and others (shared storage) as they are."""
    from cluster.jobs import PROJECT_ROOT, shipped

    inside = PROJECT_ROOT / "runs" / "test-shipped" / "d.jsonl"
    inside.parent.mkdir(parents=True, exist_ok=True)
    _jsonl(inside, ROWS)
    outside = _jsonl(tmp_path / "held.jsonl", [{"q": "9+9=", "a": "81"}])
    recipe = shipped(parse_config({"task": _task(inside, held_out_path=str(outside))}))
    assert recipe["task"]["path"] == "runs/test-shipped/d.jsonl" and recipe["task"]["held_out_path"] == str(outside)
    assert parse_config(recipe).task.path == str(inside)  # read back from the project's root, as the job does
