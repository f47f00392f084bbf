"""Bad input to the command line: one line naming the key or file and the fix, exit status 2,
nothing written, and quickly (a configuration error is refused before Ray or torch load)."""
from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cluster.cli import main

ROOT = Path(__file__).resolve().parent.parent


def refused(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("selfplay: "), err
    return err


@pytest.mark.parametrize("overrides, named", [
    (["dpo.beta=[0.1,"], "--set 'dpo.beta=[0.1,'"),
    (["self_play.iterations=true"], "self_play.iterations: a number is wanted, not true"),
    (["task.digits=false"], "task.digits: a number is wanted"),
    (["task.held_out_size=10000000"], "held_out_size 10000000"),
    (["judge.kind=pairwise_llm", "judge.llm=smollm2-135m-instruct", "judge.template='{prompt} {a}'"], "lacks {b}"),
    (["cluster.autoscale.min_generators=9"], "cluster.autoscale: max_generators (8) is below min_generators (9)"),
    (["eval.retention=[{name: a, digits: 1}, {name: a, digits: 1}]"], ": eval.retention names ['a', 'a'] repeat"),
])
def test_bad_overrides_are_refused_in_one_line(tmp_path: Path, overrides: list[str], named: str, capsys: pytest.CaptureFixture) -> None:
    argv = ["run", "--run-dir", str(tmp_path / "run")]
    for pair in overrides:
        argv += ["--set", pair]
    start = time.monotonic()
    err = refused(argv, capsys)
    assert named in err and "'seed'" not in err  # the fields involved, never the whole configuration
    assert time.monotonic() - start < 2
    assert not (tmp_path / "run").exists()


def test_bad_recipe_files_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert "is a directory" in refused(["run", str(tmp_path)], capsys)
    binary = tmp_path / "recipe.yaml"
    binary.write_bytes(bytes(range(256)))
    assert "not a text file" in refused(["run", str(binary)], capsys)
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--iterations", "0"])
    assert exit_.value.code == 2 and "not a count of one or more" in capsys.readouterr().err


def test_gpus_on_a_machine_without_them_are_refused_at_once(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    start = time.monotonic()
    assert main(["run", "--run-dir", str(tmp_path / "run"), "--set", "generator.num_gpus=1", "--set", "cluster.num_learner_gpus=1"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after Ray's own start-up lines
    assert "has no GPU" in last and "generator.num_gpus: 1" in last and "cluster.num_learner_gpus: 1" in last
    assert time.monotonic() - start < 60  # a local Ray start, not a 600 s wait for resources that never come
    assert not (tmp_path / "run").exists()


@pytest.fixture
def silent_server():
    """A TCP server that accepts connections and never answers, and a port where nothing listens."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(server.accept()[0]), daemon=True).start()
    yield server.getsockname()[1], port
    for s in [server, *accepted]:
        s.close()


def test_addresses_that_do_not_answer_fail_within_seconds(silent_server: tuple[int, int], tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    silent, nothing = silent_server
    for port in (silent, nothing):
        start = time.monotonic()
        err = refused(["status", "--address", f"http://127.0.0.1:{port}"], capsys)
        assert "does not answer" in err and time.monotonic() - start < 15
    start = time.monotonic()
    err = refused(["run", "--run-dir", str(tmp_path / "run"), "--set", f"cluster.address=127.0.0.1:{nothing}"], capsys)
    assert "nothing answers there" in err and time.monotonic() - start < 15
    assert not (tmp_path / "run").exists()


def test_help_answers_in_under_a_second() -> None:
    def took() -> float:
        start = time.monotonic()
        subprocess.run([sys.executable, "-m", "cluster.cli", "run", "--help"], cwd=ROOT, capture_output=True, check=True)
        return time.monotonic() - start

    assert min(took() for _ in range(3)) < 1.0  # the best of three, so a busy machine's one slow start does not count
