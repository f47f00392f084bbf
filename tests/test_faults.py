"""Faults a long run meets: an actor's process killed, Ctrl-C, SIGTERM, the driver killed. The run
goes on (or stops cleanly and resumes), and every game is on disk exactly once."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import ray
import yaml
from conftest import read_metrics, tiny_run

from cluster.config import parse_config
from cluster.reaper import alive, descendants
from cluster.run import run_self_play
from cluster.stopping import OUT_OF_TIME, Decision, Interrupted, Pace, StopRequest
from league.records import GAME_SCHEMA, read_tables

ROOT = Path(__file__).resolve().parent.parent
GAMES = 32


def wait_for_iteration(run_dir: Path, iteration: int, timeout: float = 300) -> None:
    """Until the run has written (and saved the state of) `iteration`."""
    deadline = time.monotonic() + timeout
    while True:
        driver = run_dir / "state" / "driver.json"
        try:
            if json.loads(driver.read_text())["iteration"] >= iteration:
                return
        except (OSError, ValueError, KeyError):
            pass
        assert time.monotonic() < deadline, f"the run did not reach iteration {iteration}"
        time.sleep(0.2)


def assert_every_game_once(run_dir: Path, iterations: int) -> None:
    games = read_tables(run_dir / "games", GAME_SCHEMA).to_pylist()
    assert len(games) == iterations * GAMES and len({g["game_id"] for g in games}) == len(games)
    assert sorted({g["round"] for g in games}) == list(range(1, iterations + 1))
    assert [r["iteration"] for r in read_metrics(run_dir)] == list(range(iterations + 1))
    assert sum(r.get("games", 0) for r in read_metrics(run_dir)) == len(games)


def kill(run_dir: Path, role: str, generation: int, timeout: float = 120) -> None:
    """Kill the run's actor `role` of restart `generation`, once it exists: a restart noticed only
    after the state the test waited for was saved has not named its actors yet."""
    digest = hashlib.sha1(str(run_dir.resolve()).encode()).hexdigest()[:6]
    restarted = f"-g{generation}" if generation else ""
    name = f"selfplay-{run_dir.name}-{digest}{restarted}-{role}"
    deadline = time.monotonic() + timeout
    while name not in ray.util.list_named_actors():
        assert time.monotonic() < deadline, f"no actor {name}"
        time.sleep(0.2)
    ray.kill(ray.get_actor(name))


def test_killed_league_judge_generator_and_learner_are_survived(ray_cluster, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    # five iterations: the learner is killed after the third, with a whole iteration to spare before the run ends
    config = parse_config(tiny_run(run_dir, self_play={"iterations": 5, "games_per_iteration": GAMES}))
    out: dict = {}
    worker = threading.Thread(target=lambda: out.update(run_self_play(config, show_progress=False)))
    worker.start()
    wait_for_iteration(run_dir, 1)
    kill(run_dir, "league", 0)
    wait_for_iteration(run_dir, 2)
    kill(run_dir, "judge-0", 1)  # the run's actors after one restart; a judge and a generator are replaced in place
    kill(run_dir, "generator-current-1", 1)
    wait_for_iteration(run_dir, 3)
    kill(run_dir, "learner", 1)
    worker.join(timeout=600)
    assert out["iterations"] == 5 and out["games"] == 5 * GAMES
    assert_every_game_once(run_dir, 5)


def selfplay(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cluster.cli", "run", *args, "--quiet"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def saved_iteration(run_dir: Path) -> int:
    driver = run_dir / "state" / "driver.json"
    return json.loads(driver.read_text())["iteration"] if driver.is_file() else 0


def stopped_by(process: subprocess.Popen, sig: int, run_dir: Path) -> tuple[str, int]:
    """Send `sig` once the run has saved one more iteration; the stop's own line, after checking
    the exit status, and the iteration saved when the signal went (read then: on a loaded machine
    this process may notice a save late, and the run ends the iteration it is in, so it may save
    one more)."""
    wait_for_iteration(run_dir, saved_iteration(run_dir) + 1)
    saved = saved_iteration(run_dir)
    process.send_signal(sig)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 128 + sig, err
    return err.strip().splitlines()[-1], saved


def test_sigterm_asks_to_stop_as_ctrl_c_does() -> None:
    """The driver test below sends SIGINT; SIGTERM goes through the same handler: the first asks
    the run to stop after its iteration, a second abandons it, and the old handler comes back."""
    stop, before = StopRequest(), signal.getsignal(signal.SIGTERM)  # Ray's own, once ray.init ran in this process
    with stop.installed():
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested and stop.name == "SIGTERM"
        with pytest.raises(Interrupted) as second:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises here, at once
        assert second.value.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_run_decides_at_each_broadcast_whether_it_saves_and_stops() -> None:
    """`Pace`: saved every `save_every` iterations and at the last; a stop asked before a broadcast
    saves there and stops; asked after it (while the version is evaluated, the learner on its
    next round), it stops at the state being saved, or goes on to the next broadcast when none is."""
    stop = StopRequest()
    pace = Pace(iterations=6, save_every=2, max_seconds=None, started=0.0, stop=stop)
    assert [pace.at_broadcast(it, 1.0).saving for it in range(1, 7)] == [False, True, False, True, False, True]
    assert pace.at_broadcast(3, 1.0) == Decision(saving=False, stopped=None)
    stop.signum = signal.SIGINT  # asked while iteration 3 was evaluated: no state of 3 is being written
    assert pace.after_evaluation(Decision(saving=False, stopped=None)) is None
    assert pace.after_evaluation(Decision(saving=True, stopped=None)) == "SIGINT"  # iteration 4's: stops there
    assert pace.at_broadcast(5, 1.0) == Decision(saving=True, stopped="SIGINT")
    unsaved = Pace(iterations=6, save_every=0, max_seconds=None, started=0.0, stop=stop)
    assert unsaved.at_broadcast(5, 1.0) == Decision(saving=False, stopped="SIGINT")
    timed = Pace(iterations=6, save_every=2, max_seconds=10.0, started=0.0)
    assert timed.at_broadcast(1, 9.0) == Decision(saving=False, stopped=None)
    assert timed.at_broadcast(1, 10.0) == Decision(saving=True, stopped=OUT_OF_TIME)


def test_ctrl_c_and_sigkill_of_the_driver_then_resume(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(tiny_run(run_dir, self_play={"iterations": 5, "games_per_iteration": GAMES})))
    line, saved = stopped_by(selfplay(str(recipe)), signal.SIGINT, run_dir)
    assert saved_iteration(run_dir) <= saved + 1 < 5  # it ended the iteration it was in, then stopped
    assert "stopped by SIGINT" in line and f"go on with: selfplay run --resume {run_dir}" in line
    # a driver killed outright: its processes (Ray's agents among them) end with it
    killed = selfplay("--resume", str(run_dir))
    wait_for_iteration(run_dir, saved_iteration(run_dir) + 1)
    left = descendants(killed.pid, only_ray=True)
    assert any(pid for pid, _ in left)
    killed.kill()
    killed.communicate(timeout=60)
    deadline = time.monotonic() + 15  # left alone, Ray's agents outlive a killed driver by minutes
    while alive(left) and time.monotonic() < deadline:
        time.sleep(1)
    assert not alive(left)
    done = selfplay("--resume", str(run_dir))
    out, err = done.communicate(timeout=600)
    assert done.returncode == 0, err
    assert json.loads(out)["iterations"] == 5
    assert_every_game_once(run_dir, 5)
