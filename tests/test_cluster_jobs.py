"""A real multi-node Ray cluster on this machine (`ray start --head` and `ray start --address`,
each node with its own custom resource, token authentication on): a recipe submitted with
`selfplay submit` runs there as a Ray job, is scaled while it runs, reports its metrics to
Ray's Prometheus export, survives the loss of the node its generators ran on (a new node
joins, as an autoscaler would bring one), and ends with every game recorded once.

The test stops only the processes it started (their process groups), never `ray stop`.
"""
from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from conftest import read_metrics

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ITERATIONS, GAMES = 20, 256


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Node:
    process: subprocess.Popen
    metrics_port: int

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """The node's processes (its own process group), then whatever is left of them, killed."""
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, sig)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=20)


@dataclass
class LocalCluster:
    gcs: str
    dashboard: str
    env: dict
    logs: Path
    nodes: list[Node]

    def add_node(self, resource: str) -> Node:
        metrics = _free_port()
        cmd = [str(BIN / "ray"), "start", "--block", "--address", self.gcs, "--num-cpus", "2",
               "--resources", json.dumps({resource: 1}), "--metrics-export-port", str(metrics),
               "--dashboard-agent-listen-port", str(_free_port())]
        log = open(self.logs / f"node-{len(self.nodes)}.log", "w")
        node = Node(subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True), metrics)
        self.nodes.append(node)
        return node

    def selfplay(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "cluster.cli", *args, "--address", self.dashboard], cwd=ROOT,
                              env=self.env, capture_output=True, text=True, timeout=timeout)

    def alive_nodes(self) -> int:
        out = subprocess.run([str(BIN / "ray"), "status", "--address", self.gcs], env=self.env, capture_output=True, text=True).stdout
        active = out.split("Active:")[1].split("Pending:")[0] if "Active:" in out else ""
        return active.count("node_")

    def wait_for_nodes(self, n: int, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while self.alive_nodes() != n:
            assert time.monotonic() < deadline, f"the cluster did not reach {n} nodes"
            time.sleep(1)


@pytest.fixture(scope="module")
def local_cluster(tmp_path_factory: pytest.TempPathFactory):
    logs = tmp_path_factory.mktemp("cluster-logs")
    env = {**os.environ, "RAY_AUTH_MODE": "token", "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "RAY_metrics_report_interval_ms": "1000",
           # a lost node is declared dead in about 5 s rather than Ray's 15 to 25 (the run waits for that to replace its generators)
           "RAY_health_check_period_ms": "1000", "RAY_health_check_timeout_ms": "2000", "RAY_health_check_failure_threshold": "5"}
    env.pop("RAY_ADDRESS", None)
    gcs_port, dashboard_port, head_metrics = _free_port(), _free_port(), _free_port()
    cmd = [str(BIN / "ray"), "start", "--head", "--block", "--port", str(gcs_port), "--dashboard-host", "127.0.0.1",
           "--dashboard-port", str(dashboard_port), "--num-cpus", "2", "--resources", json.dumps({"head_node": 1}),
           "--metrics-export-port", str(head_metrics), "--ray-client-server-port", str(_free_port()),
           "--dashboard-agent-listen-port", str(_free_port())]
    head = Node(subprocess.Popen(cmd, env=env, stdout=open(logs / "head.log", "w"), stderr=subprocess.STDOUT, start_new_session=True), head_metrics)
    cluster = LocalCluster(f"127.0.0.1:{gcs_port}", f"http://127.0.0.1:{dashboard_port}", env, logs, [head])
    try:
        cluster.wait_for_nodes(1)
        cluster.add_node("generator_node")
        cluster.wait_for_nodes(2)
        yield cluster
    finally:
        for node in cluster.nodes:  # all at once: a graceful `ray stop` of each node takes up to 20 s
            node.stop(signal.SIGKILL)


def _scrape(cluster: LocalCluster) -> str:
    text = []
    for node in cluster.nodes:
        if node.process.poll() is None:
            try:
                text.append(urllib.request.urlopen(f"http://127.0.0.1:{node.metrics_port}/metrics", timeout=5).read().decode())
            except OSError:
                pass
    return "\n".join(text)


def _series(text: str, name: str, run: str) -> list[float]:
    return [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{") and f'run="{run}"' in line]


def _wait(condition, timeout: float, what: str, poll: float = 0.5):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(poll)
    return value


def test_submit_scale_metrics_and_node_loss(local_cluster: LocalCluster, tmp_path: Path) -> None:
    run_dir = tmp_path / "job-run"
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({
        "model": {"tiny": {"hidden_size": 64, "num_layers": 2, "num_heads": 2, "intermediate_size": 128}},
        "sft": {"steps": 100, "learning_rate": 3e-3, "stop_at_accuracy": None},
        "task": {"digits": 1, "held_out_size": 16, "held_out_every": 5},
        "self_play": {"iterations": ITERATIONS, "games_per_iteration": GAMES},
        # the generators run on the second node; the current policy's answer for the snapshots too (one engine to replace)
        "generator": {"resources": {"generator_node": 0.1}, "snapshot_replicas": 0},
    }))
    submitted = local_cluster.selfplay("submit", str(recipe), "--run-dir", str(run_dir))
    assert submitted.returncode == 0, submitted.stderr
    job = submitted.stdout.strip().splitlines()[-1]
    assert job.startswith("selfplay-")

    _wait(lambda: (run_dir / "metrics.jsonl").is_file() and len(read_metrics(run_dir)) >= 2, 240, "the job's first iteration")
    scaled = local_cluster.selfplay("scale", job, "--generators", "2")
    assert scaled.returncode == 0, scaled.stderr
    status = json.loads(local_cluster.selfplay("status", job).stdout)
    assert status["status"] == "RUNNING" and status["run_dir"] == str(run_dir)

    # the driver's metrics, read back from Ray's Prometheus export
    run = run_dir.name
    names = ("ray_selfplay_games_total", "ray_selfplay_elo", "ray_selfplay_accuracy", "ray_selfplay_generators",
             "ray_selfplay_weight_sync_seconds", "ray_selfplay_learner_loss", "ray_selfplay_queue_depth",
             "ray_selfplay_judge_latency_seconds_count", "ray_selfplay_learner_step_seconds_count", "ray_selfplay_phase_seconds")

    def every_series() -> str | None:
        text = _scrape(local_cluster)
        return text if all(_series(text, n, run) for n in names) else None

    text = _wait(every_series, 90, "every series")
    assert max(_series(text, "ray_selfplay_games_total", run)) >= GAMES
    assert "ray_selfplay_generated_tokens_total" in text  # counted by the generators themselves, on their node
    assert all(f'phase="{phase}"' in text for phase in ("play", "learning", "weight_sync", "evaluation", "waited_for_learner"))

    # the generators' node is lost mid-run; a new one joins and the run goes on
    _wait(lambda: any(r.get("generators") == 2 for r in read_metrics(run_dir)), 120, "the run to scale to 2 generators")
    lost = local_cluster.nodes[1]
    lost.stop(signal.SIGKILL)
    local_cluster.add_node("generator_node")
    def ended() -> str | None:
        state = json.loads(local_cluster.selfplay("status", job).stdout)["status"]
        return state if state in ("SUCCEEDED", "FAILED", "STOPPED") else None

    # each status call starts a Python: asked every 10 s until the run's summary (its last write) is on disk
    polls = itertools.count(1)
    _wait(lambda: (run_dir / "summary.json").is_file() or (next(polls) % 20 == 0 and ended()), 300, "the run to end")
    final = _wait(ended, 120, "the job to end", poll=2)
    logs = local_cluster.selfplay("logs", job).stdout
    assert final == "SUCCEEDED", logs[-3000:]
    rows = read_metrics(run_dir)
    assert [r["iteration"] for r in rows] == list(range(ITERATIONS + 1))
    assert rows[-1]["generators"] == 2 and rows[-1]["generators_replaced"] >= 1, rows[-1]
    from league.records import GAME_SCHEMA, read_tables

    on_disk = read_tables(run_dir / "games", GAME_SCHEMA).to_pylist()
    assert len(on_disk) == ITERATIONS * GAMES and len({g["game_id"] for g in on_disk}) == len(on_disk)
    assert json.loads((run_dir / "summary.json").read_text())["games"] == ITERATIONS * GAMES


def test_job_commands_explain_what_is_wrong(local_cluster: LocalCluster, tmp_path: Path) -> None:
    missing = local_cluster.selfplay("status", "selfplay-no-such-job")
    assert missing.returncode == 2 and "no job 'selfplay-no-such-job'" in missing.stderr
    assert f"the Ray cluster at {local_cluster.dashboard}" in missing.stderr  # says whose cluster it talks to
    foreign = "someone-elses-job"  # submitted on the same cluster without selfplay
    ray_job = [str(BIN / "ray"), "job"]
    subprocess.run([*ray_job, "submit", "--address", local_cluster.dashboard, "--submission-id", foreign, "--no-wait", "--", "sleep", "600"],
                   env=local_cluster.env, check=True, capture_output=True, timeout=120)
    for command in ("status", "logs", "stop"):
        refused = local_cluster.selfplay(command, foreign)
        assert refused.returncode == 2 and "not submitted by selfplay" in refused.stderr, refused.stderr
    state = subprocess.run([*ray_job, "status", "--address", local_cluster.dashboard, foreign], env=local_cluster.env,
                           capture_output=True, text=True, timeout=120).stdout
    assert "STOPPED" not in state and "FAILED" not in state, state
    subprocess.run([*ray_job, "stop", "--address", local_cluster.dashboard, foreign], env=local_cluster.env, capture_output=True, timeout=120)
    relative = local_cluster.selfplay("submit", "--run-dir", "relative/run")
    assert relative.returncode == 2 and "absolute path on the cluster" in relative.stderr
    no_token = subprocess.run([sys.executable, "-m", "cluster.cli", "status", "--address", local_cluster.dashboard], cwd=ROOT,
                              env={**local_cluster.env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(tmp_path / "none")},
                              capture_output=True, text=True, timeout=120)
    assert no_token.returncode == 2 and "token" in no_token.stderr, no_token.stderr
