"""Iterative refinement: traces of every step, pairs where the judge tells the answers apart."""
from pathlib import Path

import pytest
from conftest import mode_pairs, read_metrics

from cluster.config import ConfigError, parse_config
from judge.verdict import Verdict
from league.records import read_tables
from league.refinement import TRACE_SCHEMA, refinement_records
from tasks.addition import AdditionTask


def test_records_keep_every_step_and_pair_the_better_answer() -> None:
    traces, pairs = refinement_records(
        4, 2, ["p0", "p1", "p2"], ["o0", "o1", "o2"], ["c0", "c1", "c2"], ["i0", "i1", "o2"],
        [Verdict("b", 0, 1, ""), Verdict("a", 1, 0, ""), Verdict("tie", 1, 1, "")],
    )
    assert traces.num_rows == 3
    assert traces.column("winner").to_pylist() == ["improved", "original", "tie"]
    assert traces.to_pylist()[0] == {
        "round": 4, "prompt": "p0", "iteration": 2, "original": "o0", "critique": "c0", "improved": "i0",
        "score_original": 0.0, "score_improved": 1.0, "winner": "improved",
    }
    assert [(p["chosen"], p["rejected"]) for p in pairs.to_pylist()] == [("i0", "o0"), ("o1", "i1")]
    assert set(pairs.column("source").to_pylist()) == {"refinement"}


def test_templates_are_checked_when_read() -> None:
    with pytest.raises(ConfigError, match=r"refinement: .*critique_template .* is not a format string"):
        parse_config({"refinement": {"critique_template": "{answer} is wrong"}})
    # the critique does not exist yet when the critique is asked for
    with pytest.raises(ConfigError, match=r"critique_template .* over \{prompt\}, \{response\}"):
        parse_config({"refinement": {"critique_template": "{prompt}{critique}"}})


def test_refinement_mode_on_real_actors(solo_modes_run: Path) -> None:
    run_dir = solo_modes_run
    [row] = read_metrics(run_dir)[1:]
    traces = read_tables(run_dir / "traces", TRACE_SCHEMA).to_pylist()
    pairs = mode_pairs(run_dir, "refinement")
    assert len(traces) == row["refinement_traces"] == 32 * 2
    assert sorted({t["iteration"] for t in traces}) == [1, 2]
    by_prompt = {}
    for t in traces:
        by_prompt.setdefault(t["prompt"], {})[t["iteration"]] = t
    for steps in by_prompt.values():  # step 2 starts from step 1's improved answer
        assert steps[2]["original"] == steps[1]["improved"]
    task = AdditionTask(digits=1)
    answers = {task.problem(a, b).prompt: task.problem(a, b).answer for a in range(10) for b in range(10)}
    assert len(pairs) == sum(1 for t in traces if t["winner"] != "tie" and t["original"] != t["improved"])
    for p in pairs:
        assert p["chosen"].strip() == answers[p["prompt"]] != p["rejected"].strip()
