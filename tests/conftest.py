"""Shared fixtures: a tiny model built in code and saved, and one local Ray cluster per session."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer Llama with the character tokenizer, saved with save_pretrained."""
    from learner.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128)


@pytest.fixture(scope="session")
def ray_cluster():
    """A real local Ray cluster shared by the integration tests; shut down at the end."""
    import ray

    from cluster.run import WORKER_ENV

    ray.init(address="local", num_cpus=4, include_dashboard=False, runtime_env={"env_vars": WORKER_ENV}, log_to_driver=False)
    yield ray
    ray.shutdown()


def tiny_run(run_dir: Path, **sections: dict) -> dict:
    """A recipe for integration tests: a small model that learns 1-digit addition in a few seconds
    of SFT, so its answers are partly right and every mode has something to judge. Its snapshots
    are answered by the current policy's engine (one engine, which starts while the learner warms
    up); the tests of league roles, of the default recipe and of the real models keep engines of
    their own for the snapshots."""
    recipe = {
        "run_dir": str(run_dir),
        "model": {"tiny": {"hidden_size": 64, "num_layers": 2, "num_heads": 2, "intermediate_size": 128}},
        "sft": {"steps": 150, "learning_rate": 3e-3, "stop_at_accuracy": None},
        "task": {"digits": 1, "held_out_size": 16, "held_out_every": 5},
        "generator": {"snapshot_replicas": 0},
    }
    for key, value in sections.items():
        recipe[key] = {**recipe.get(key, {}), **value} if isinstance(value, dict) else value
    return recipe


@pytest.fixture(scope="session")
def solo_modes_run(ray_cluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One run of the three modes that play no head-to-head games, side by side: adversarial
    filtering, iterative refinement and skill-conditioned play (their tests share it: one run's
    start-up instead of three). Three iterations asked; the time budget ends it after the first."""
    from cluster.config import parse_config
    from cluster.run import run_self_play

    run_dir = tmp_path_factory.mktemp("solo_modes") / "run"
    recipe = tiny_run(
        run_dir, self_play={"iterations": 3, "max_seconds": 0.001, "modes": ["adversarial", "refinement", "skill"]},
        adversarial={"prompts": 24, "samples": 6, "spread_threshold": 0.5}, refinement={"prompts": 32, "rounds": 2}, skill={"prompts": 20},
    )
    run_self_play(parse_config(recipe), show_progress=False)
    return run_dir


def mode_pairs(run_dir: Path, tag: str) -> list[dict]:
    """The pairs one mode of a run gave (pairs/round-N-<tag>.parquet)."""
    import pyarrow.parquet as pq

    return [p for f in sorted((run_dir / "pairs").glob(f"round-*-{tag}.parquet")) for p in pq.read_table(f).to_pylist()]


def read_metrics(run_dir: Path) -> list[dict]:
    import json

    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="session")
def smollm2() -> Path:
    """The converted SmolLM2-135M-Instruct (a real pretrained chat model from a PyPI wheel),
    converted once into the cache and shared by every test that needs a real model (under a
    lock: with `pytest -n`, the workers would otherwise convert it at once)."""
    import fcntl

    from learner.pretrained import cache_dir, resolve_model

    cache_dir().mkdir(parents=True, exist_ok=True)
    with open(cache_dir() / ".convert.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return resolve_model("smollm2-135m-instruct", show_progress=False)


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under `root` (hidden ones too) by its relative path and SHA-256: what a test
    compares to show that a refused command changed nothing."""
    import hashlib

    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}
