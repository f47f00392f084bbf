"""A command that fails never deletes or changes what a user already has: a folder that holds
no run is never taken for one, an old run is replaced only once the new one has started, and
bad run directories are refused in one line before anything is written."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import tiny_run, tree_digest

from cluster.cli import main
from cluster.config import parse_config
from cluster.run import run_self_play
from cluster.run_dir import MARKER


def finished_run(root: Path) -> Path:
    """What a finished run leaves, as far as replacing it is concerned: its marker and files."""
    (root / "checkpoints" / "v0").mkdir(parents=True)
    (root / MARKER).write_text("{}")
    (root / "config.yaml").write_text(f"run_dir: {root}\n")
    (root / "checkpoints" / "v0" / "config.json").write_text("{}")
    (root / "metrics.jsonl").write_text('{"iteration": 0, "accuracy": 0.5}\n')
    return root


def refused(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    """The one line a refused command prints (after checking its exit status 2)."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("selfplay: "), err
    return err


def test_overwrite_never_takes_a_users_folder_for_a_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "project"
    (folder / "src").mkdir(parents=True)
    (folder / "config.yaml").write_text("my: own settings\n")  # a file name a run also writes
    (folder / "src" / "main.py").write_text("print('mine')\n")
    before = tree_digest(folder)
    err = refused(["run", "--run-dir", str(folder), "--overwrite", "--iterations", "1"], capsys)
    assert "holds no selfplay run" in err and MARKER in err
    assert tree_digest(folder) == before


@pytest.mark.parametrize("damage, named", [
    ({"config.json": "{not json"}, "config.json"),
    ({"config.json": json.dumps({"max_position_embeddings": 64}), "model.safetensors": b"\x10\x00\x00\x00\x00\x00\x00\x00{\"w\""}, "model.safetensors"),
])
def test_overwrite_with_a_broken_model_leaves_the_old_run(
    tmp_path: Path, damage: dict, named: str, capsys: pytest.CaptureFixture
) -> None:
    old = finished_run(tmp_path / "run")
    model = tmp_path / "model"
    model.mkdir()
    for name, content in damage.items():
        (model / name).write_bytes(content.encode() if isinstance(content, str) else content)
    before = tree_digest(old)
    err = refused(["run", "--run-dir", str(old), "--overwrite", "--set", f"model.path={model}"], capsys)
    assert named in err and "model" in err
    assert tree_digest(old) == before


def test_a_context_longer_than_the_checkpoint_is_refused(tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    err = refused(["run", "--run-dir", str(tmp_path / "run"), "--set", f"model.path={tiny_model}",
                   "--set", "model.max_model_len=100000"], capsys)
    assert "model.max_model_len" in err and "at most" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("where", ["a file", "under a file", "cannot be created"])
def test_an_unusable_run_dir_is_refused(tmp_path: Path, where: str, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "file").write_text("x")
    run_dir = {"a file": tmp_path / "file", "under a file": tmp_path / "file" / "run", "cannot be created": Path("/proc/selfplay-run")}[where]
    err = refused(["run", "--run-dir", str(run_dir), "--iterations", "1"], capsys)
    assert str(run_dir) in err
    assert (tmp_path / "file").read_text() == "x"


def test_a_new_run_that_fails_to_start_puts_the_old_one_back(ray_cluster, tiny_model: Path, tmp_path: Path) -> None:
    old = finished_run(tmp_path / "run")
    before = tree_digest(old)
    weightless = tmp_path / "weightless"  # a valid config, but no weights: the learner cannot load it
    weightless.mkdir()
    for name in ("config.json", "tokenizer_config.json", "tokenizer.json", "special_tokens_map.json"):
        if (tiny_model / name).is_file():
            (weightless / name).write_bytes((tiny_model / name).read_bytes())
    config = parse_config(tiny_run(old, model={"path": str(weightless)}, self_play={"iterations": 1}))
    with pytest.raises(Exception, match="weights|safetensors|model"):
        run_self_play(config, overwrite=True, show_progress=False)
    assert tree_digest(old) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # nothing left aside


def test_a_run_driven_now_by_another_process_is_left_alone(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import socket
    import subprocess
    import sys

    live = finished_run(tmp_path / "run")
    driver = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (live / MARKER).write_text(json.dumps({"pid": driver.pid, "host": socket.gethostname()}))
        before = tree_digest(live)
        err = refused(["run", "--run-dir", str(live), "--overwrite", "--iterations", "1"], capsys)
        assert f"being written by a running selfplay (process {driver.pid})" in err
        assert tree_digest(live) == before
    finally:
        driver.kill()
        driver.wait()


def test_an_interrupted_overwrite_says_where_the_old_run_is(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    aside = finished_run(tmp_path / ".run.replaced-4242")  # the old run, moved aside by a killed --overwrite
    err = refused(["run", "--run-dir", str(tmp_path / "run"), "--iterations", "1"], capsys)
    assert "was interrupted" in err and str(aside) in err
