"""The learner as a Ray actor: hosts `learner.learner.Learner`, or with `learner.ranks` > 1 a group
of them holding one policy in shards (learner/shards.py), which the driver calls as one actor."""
from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import ray

from learner.learner import DPOSettings, Learner
from learner.lora import LoRAOptions
from learner.shards import Shards

ENV = {"env_vars": {"TOKENIZERS_PARALLELISM": "false"}}
# The concurrency group a snapshot of the served weights is written in, beside training (`Learner.keep_served`).
SNAPSHOTS = "snapshots"


def learner_actor(name: str, model_path: Path, settings: DPOSettings, seed: int, num_gpus: float = 0, scheduling_strategy: Any = None,
                  lora: LoRAOptions | None = None, ranks: int = 1, snapshots_beside_training: bool = False) -> Any:
    """`scheduling_strategy`: where it goes (the orchestrator prefers the driver's node).
    `snapshots_beside_training`: the SNAPSHOTS concurrency group, for the asynchronous pipeline."""
    if ranks > 1:
        return LearnerGroup(name, model_path, settings, seed, num_gpus, ranks, scheduling_strategy, snapshots_beside_training)
    return (
        _learner_class(snapshots_beside_training)
        .options(name=name, num_cpus=0, num_gpus=num_gpus, scheduling_strategy=scheduling_strategy, runtime_env=ENV)
        .remote(str(model_path), settings, seed, "cuda" if num_gpus > 0 else "cpu", lora)
    )


def _learner_class(snapshots_beside_training: bool) -> Any:
    """The Learner as a Ray actor class; with the SNAPSHOTS group, a snapshot of the served weights
    (kept in memory, no collective even in a group) is written while `train` runs."""
    return ray.remote(concurrency_groups={SNAPSHOTS: 1})(Learner) if snapshots_beside_training else ray.remote(Learner)


def kill_learner(learner: Any) -> None:
    """End a learner actor or every rank of a learner group."""
    if isinstance(learner, LearnerGroup):
        learner.kill()
    else:
        ray.kill(learner)


@ray.remote(num_cpus=0)
def _rank0(*answers: Any) -> Any:
    """Rank 0's answer, once every rank has answered (a rank's error is raised here)."""
    return answers[0]


@ray.remote(num_cpus=0)
def _rendezvous() -> str:
    """An address for the group's process group on the node this task runs on."""
    with socket.socket() as s:
        s.bind(("", 0))
        return f"tcp://{ray.util.get_node_ip_address()}:{s.getsockname()[1]}"


class _Call:
    def __init__(self, group: LearnerGroup, method: str, options: dict[str, Any] | None = None) -> None:
        self.group, self.method, self._options = group, method, options or {}

    def options(self, **options: Any) -> _Call:
        """The call's Ray options (a concurrency group) on every rank."""
        return _Call(self.group, self.method, {**self._options, **options})

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        return _rank0.remote(*[getattr(rank, self.method).options(**self._options).remote(*args, **kwargs) for rank in self.group.ranks])


class LearnerGroup:
    """`ranks` learner actors training one policy with FSDP2, called like one learner actor:
    `group.train.remote(pairs)` runs on every rank and gives rank 0's answer (the whole gathered
    weights, for `publish`) once every rank has finished. With GPUs the ranks take a placement
    group of a bundle each, packed; CPU ranks stay on the driver's node (`scheduling_strategy`)."""

    def __init__(self, name: str, model_path: Path, settings: DPOSettings, seed: int, num_gpus: float, ranks: int,
                 scheduling_strategy: Any = None, snapshots_beside_training: bool = False) -> None:
        from ray.util.placement_group import placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        self.placement = placement_group([{"GPU": num_gpus}] * ranks, strategy="PACK") if num_gpus else None
        if self.placement is not None:
            ray.get(self.placement.ready())
        where = [PlacementGroupSchedulingStrategy(self.placement, r) if self.placement else scheduling_strategy for r in range(ranks)]
        address = ray.get(_rendezvous.options(scheduling_strategy=where[0]).remote())
        self.ranks = [
            _learner_class(snapshots_beside_training)
            .options(name=f"{name}-rank{r}", num_cpus=0, num_gpus=num_gpus, scheduling_strategy=where[r], runtime_env=ENV)
            .remote(str(model_path), settings, seed, "cuda" if num_gpus > 0 else "cpu", None, Shards(r, ranks, address))
            for r in range(ranks)
        ]

    def __getattr__(self, method: str) -> _Call:
        if method.startswith("_"):
            raise AttributeError(method)
        return _Call(self, method)

    def kill(self) -> None:
        from ray.util.placement_group import remove_placement_group

        for rank in self.ranks:
            ray.kill(rank)
        if self.placement is not None:
            remove_placement_group(self.placement)
