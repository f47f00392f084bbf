"""The README's staged-pipeline example, run as written (only its run directory moved to a temp dir)."""
import contextlib
import io
import json
import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_example() -> str:
    text = README.read_text()
    match = re.search(r"<!-- staged-example[^>]*-->\n```python\n(.*?)```", text, re.S)
    assert match, "the README lost its staged-pipeline example"
    return match.group(1)


def test_readme_staged_example_runs(ray_cluster, tmp_path: Path) -> None:
    code = readme_example()
    assert '"run_dir": "runs/staged"' in code
    run_dir = tmp_path / "staged"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code.replace("runs/staged", str(run_dir)), "README.md", "exec"), {})
    printed = [line.split() for line in out.getvalue().splitlines() if re.fullmatch(r"\d+ [\d.]+ \d+", line.strip())]
    assert [int(p[0]) for p in printed] == [1, 2, 3]
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [0, 1, 2, 3]
    assert [float(p[1]) for p in printed] == [r["accuracy"] for r in rows[1:]]
    assert all(r["games"] == 256 and r["refinement_traces"] == 256 for r in rows[1:])
    stages = [json.loads(line) for line in (run_dir / "stages.jsonl").read_text().splitlines()]
    assert [s["stage"] for s in stages] == ["sft", "reward_model"] and stages[1]["eval_accuracy"] > 0.5
    for path in ("model/sft/config.json", "model/reward/config.json", "checkpoints/v0/config.json"):
        assert (run_dir / path).is_file(), path
