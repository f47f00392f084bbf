"""The generator as a Ray actor: a thin host around `actors.generator.Generator`.

A generator with tensor parallelism > 1 is started inside a placement group of one-GPU
bundles, one per rank, all on one node (STRICT_PACK: tensor parallelism across nodes would
send every layer's all-reduce over the network), with child tasks captured: vLLM's Ray
executor then puts its workers into that group. The group belongs to the generator:
`stop_generator` removes both.
"""
from __future__ import annotations

from typing import Any

import ray
from ray.util.placement_group import PlacementGroup, placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from actors.generator import EngineSpec, Generator

# vLLM's engine core runs inside the actor's own process (see Generator.__init__), and its
# logging stays at warnings so the driver's terminal shows the run, not the engine.
GENERATOR_ENV = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_LOGGING_LEVEL": "WARNING", "TOKENIZERS_PARALLELISM": "false"}

_PLACEMENTS: dict[Any, PlacementGroup] = {}  # actor id -> the placement group of a tensor-parallel generator


def tensor_parallel_bundles(ranks: int, num_cpus: float, resources: dict[str, float]) -> list[dict[str, float]]:
    """One bundle per tensor-parallel rank, each a GPU (vLLM takes at most one per bundle); the
    CPUs and custom resources asked for per generator go in the first (the group is on one
    node, so a per-node marker such as `generator_node: 1` is asked for once, not per rank)."""
    first = {"GPU": 1.0, **({"CPU": num_cpus} if num_cpus else {}), **resources}
    return [first] + [{"GPU": 1.0} for _ in range(ranks - 1)]


def generator_actor(
    name: str, spec: EngineSpec, policy: str, version: int, num_cpus: float = 0, num_gpus: float = 0,
    resources: dict[str, float] | None = None,
):
    """Start a named generator actor serving `policy` at `version` from `spec.model_path`."""
    options: dict[str, Any] = dict(name=name, num_cpus=num_cpus, num_gpus=num_gpus, resources=resources or {})
    group = None
    if spec.tensor_parallel_size > 1:
        group = placement_group(tensor_parallel_bundles(spec.tensor_parallel_size, num_cpus, resources or {}), strategy="STRICT_PACK")
        # the actor itself holds nothing: its vLLM workers take the bundles
        options.update(num_cpus=0, num_gpus=0, resources={}, scheduling_strategy=PlacementGroupSchedulingStrategy(
            group, placement_group_capture_child_tasks=True))
    actor = ray.remote(Generator).options(**options, runtime_env={"env_vars": GENERATOR_ENV}).remote(spec, policy, version)
    if group is not None:
        _PLACEMENTS[actor._actor_id] = group
    return actor


def stop_generator(actor: Any) -> None:
    """Kill a generator (its vLLM workers go with it) and release its placement group, if any."""
    ray.kill(actor)
    group = _PLACEMENTS.pop(actor._actor_id, None)
    if group is not None:
        remove_placement_group(group)
