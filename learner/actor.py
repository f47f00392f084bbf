"""The learner as a Ray actor: hosts `learner.learner.Learner`."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import ray

from learner.learner import DPOSettings, Learner
from learner.lora import LoRAOptions


def learner_actor(name: str, model_path: Path, settings: DPOSettings, seed: int, num_gpus: float = 0, scheduling_strategy: Any = None,
                  lora: LoRAOptions | None = None):
    """`scheduling_strategy`: where it goes (the orchestrator prefers the driver's node)."""
    return (
        ray.remote(Learner)
        .options(name=name, num_cpus=0, num_gpus=num_gpus, scheduling_strategy=scheduling_strategy,
                 runtime_env={"env_vars": {"TOKENIZERS_PARALLELISM": "false"}})
        .remote(str(model_path), settings, seed, "cuda" if num_gpus > 0 else "cpu", lora)
    )
