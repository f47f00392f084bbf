"""Steering a live run: the generator count, asked for from outside or by the autoscaling policy.

A run starts a small named actor, `selfplay-<run>-<hash>-control`, in the `selfplay` Ray
namespace. `selfplay scale` (from any machine, as a short Ray job through the dashboard; or
`python -m cluster.control RUN N` on the cluster) sets its target; the driver reads it before
every iteration and resizes the current policy's generator pool.

Autoscaling: with `cluster.autoscale.enabled` the target follows the queue depth instead (the
prompts the current policy's generators were asked for in the last iteration, over
`prompts_per_generator`, within `min_generators`..`max_generators`), and the run asks Ray's
autoscaler for the resources of that many generators (`ray.autoscaler.sdk.request_resources`)
so that on a cluster with an autoscaler nodes are added before the generators are.
"""
from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass
from typing import Any

NAMESPACE = "selfplay"


class ControlError(RuntimeError):
    """The live run to steer cannot be found or told."""


class RunControl:
    """Hosted by the control actor: the generator count last asked for, taken once."""

    def __init__(self) -> None:
        self.target: int | None = None

    def set_generators(self, n: int) -> int:
        if n < 1:
            raise ValueError(f"a run needs at least one generator (got {n})")
        self.target = n
        return n

    def take(self) -> int | None:
        target, self.target = self.target, None
        return target


@dataclass(frozen=True)
class AutoscalePolicy:
    min_generators: int = 1
    max_generators: int = 8
    prompts_per_generator: int = 2048


def desired_generators(queue_depth: int, policy: AutoscalePolicy) -> int:
    """Generators wanted for `queue_depth` prompts per iteration: one per `prompts_per_generator`, within bounds."""
    want = math.ceil(queue_depth / policy.prompts_per_generator) if queue_depth > 0 else policy.min_generators
    return max(policy.min_generators, min(policy.max_generators, want))


def generator_bundles(n: int, num_cpus: float, num_gpus: float, resources: dict[str, float], ranks: int = 1) -> list[dict[str, float]]:
    """What `n` generators ask of the cluster, as `request_resources` bundles (empty entries left
    out); a generator with `ranks` > 1 tensor-parallel ranks asks for its placement group's bundles."""
    if ranks > 1:
        from actors.actor import tensor_parallel_bundles

        return tensor_parallel_bundles(ranks, num_cpus, resources) * n
    bundle = {"CPU": num_cpus, "GPU": num_gpus, **resources}
    return [{k: v for k, v in bundle.items() if v}] * n if any(bundle.values()) else []


def control_actor(name: str, scheduling_strategy: Any = None):
    import ray

    return ray.remote(RunControl).options(name=name, namespace=NAMESPACE, num_cpus=0, scheduling_strategy=scheduling_strategy).remote()


def scale_run(run: str, n: int) -> str:
    """Set the generator target of the live run whose name (its run directory's name) is `run`;
    to be called on the cluster (a driver joined to it). Returns the control actor's name."""
    import ray

    if not ray.is_initialized():
        ray.init(address="auto", namespace=NAMESPACE, log_to_driver=False)
    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["namespace"] == NAMESPACE]
    matches = [name for name in names if re.fullmatch(rf"selfplay-{re.escape(run)}-[0-9a-f]{{6}}(-g\d+)?-control", name)]
    if len(matches) != 1:
        live = sorted(re.sub(r"-[0-9a-f]{6}(-g\d+)?-control$", "", name[len("selfplay-"):]) for name in names if name.endswith("-control"))
        found = "none" if not matches else f"{len(matches)} of that name"
        raise ControlError(f"live runs named {run!r}: {found}; live runs on this cluster: {', '.join(live) or 'none'}")
    ray.get(ray.get_actor(matches[0], namespace=NAMESPACE).set_generators.remote(n))
    return matches[0]


if __name__ == "__main__":
    try:
        print(f"asked {scale_run(sys.argv[1], int(sys.argv[2]))} for {sys.argv[2]} generators")
    except ControlError as err:
        print(f"selfplay scale: {err}", file=sys.stderr)
        sys.exit(2)
