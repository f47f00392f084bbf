"""The generator as a Ray actor: a thin host around `actors.generator.Generator`."""
from __future__ import annotations

import ray

from actors.generator import EngineSpec, Generator

# vLLM's engine core runs inside the actor's own process (see Generator.__init__), and its
# logging stays at warnings so the driver's terminal shows the run, not the engine.
GENERATOR_ENV = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_LOGGING_LEVEL": "WARNING", "TOKENIZERS_PARALLELISM": "false"}


def generator_actor(
    name: str, spec: EngineSpec, policy: str, version: int, num_cpus: float = 0, num_gpus: float = 0,
    resources: dict[str, float] | None = None,
):
    """Start a named generator actor serving `policy` at `version` from `spec.model_path`."""
    remote_cls = ray.remote(Generator)
    return remote_cls.options(
        name=name, num_cpus=num_cpus, num_gpus=num_gpus, resources=resources or {}, runtime_env={"env_vars": GENERATOR_ENV}
    ).remote(spec, policy, version)
