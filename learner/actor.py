"""The learner as a Ray actor: hosts `learner.learner.Learner`."""
from __future__ import annotations

from pathlib import Path

import ray

from learner.learner import DPOSettings, Learner


def learner_actor(name: str, model_path: Path, settings: DPOSettings, seed: int, num_gpus: float = 0):
    return (
        ray.remote(Learner)
        .options(name=name, num_cpus=0, num_gpus=num_gpus, runtime_env={"env_vars": {"TOKENIZERS_PARALLELISM": "false"}})
        .remote(str(model_path), settings, seed)
    )
