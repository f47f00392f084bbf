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

    ray.init(num_cpus=4, include_dashboard=False, runtime_env={"env_vars": WORKER_ENV}, log_to_driver=False)
    yield ray
    ray.shutdown()
