"""The learner's side of vLLM's weight-transfer engine: its weights straight to the generators.

On GPUs (backend `nccl`) the learner broadcasts its parameters over NCCL to every
current-policy generator at once, instead of copying them through Ray's object store; on CPU
the `gloo` backend (actors/gloo_transfer.py) runs the same handshake over TCP. vLLM's trainer
engine drives the protocol (rendezvous, start / update / finish on every engine, metadata
checked against what is sent); `GeneratorsClient` is how it reaches our generator actors, with a
deadline on every call so a stuck peer fails the sync instead of hanging it.

The group is fixed to the generators it was opened with: the pool re-opens it when its
generators change (`actors.pool.GeneratorPool`).
"""
from __future__ import annotations

import socket
from typing import Any

import ray
import torch
from ray.exceptions import GetTimeoutError

BACKENDS = ("nccl", "gloo")


class WeightTransferError(RuntimeError):
    """A weight transfer could not start or did not finish in time."""


class GeneratorsClient:
    """vLLM's `VLLMWeightSyncClient` over our generator actors (actors.generator.Generator).

    Each generator runs `ranks_per_generator` vLLM workers (its tensor-parallel size), so the
    i-th one's workers take ranks 1 + i * ranks_per_generator onwards (the learner is rank 0).
    `finish_weight_update` also tells each generator which policy and version it now serves.
    """

    def __init__(self, generators: list[Any], ranks_per_generator: int, timeout_s: float) -> None:
        self.generators, self.stride, self.timeout_s = list(generators), ranks_per_generator, timeout_s
        self.serving: tuple[str, int] = ("current", 0)

    def _wait(self, refs: list[Any], step: str) -> None:
        try:
            ray.get(refs, timeout=self.timeout_s)
        except GetTimeoutError:
            raise WeightTransferError(
                f"weight transfer: {step} on {len(refs)} generator(s) did not finish within {self.timeout_s:g} s"
            ) from None

    def init_weight_transfer_engine(self, init_info: dict[str, Any]) -> None:
        offset = init_info["rank_offset"]
        refs = [
            g.init_weight_transfer_engine.remote({**init_info, "rank_offset": offset + i * self.stride})
            for i, g in enumerate(self.generators)
        ]
        self._wait(refs, "joining the transfer group")

    def start_weight_update(self) -> None:
        self._wait([g.start_weight_update.remote() for g in self.generators], "start_weight_update")

    def update_weights(self, update_info: Any) -> None:
        self._wait([g.update_weights.remote(update_info) for g in self.generators], "update_weights")

    def finish_weight_update(self, weight_version: str | None = None) -> None:
        policy, version = self.serving
        self._wait([g.finish_weight_update.remote(policy, version) for g in self.generators], "finish_weight_update")

    def shutdown(self) -> None:
        """Release the group on every generator still alive (a dead one has nothing to release)."""
        refs = [g.shutdown_weight_transfer_engine.remote() for g in self.generators]
        for ref in refs:
            try:
                ray.get(ref, timeout=self.timeout_s)
            except Exception:  # noqa: BLE001 - a dead or stuck generator is dropped from the group either way
                continue


def free_port(host: str) -> int:
    """A TCP port free on `host` now, for the group's rendezvous store."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class WeightSender:
    """The trainer end of one transfer group: opened once per set of generators, then `send`
    each time the learner has new weights."""

    def __init__(self, backend: str, module: torch.nn.Module, generators: list[Any], ranks_per_generator: int,
                 timeout_s: float) -> None:
        from vllm.distributed.weight_transfer.base import ModuleSource
        from vllm.distributed.weight_transfer.factory import WeightTransferTrainerFactory

        if backend not in BACKENDS:
            raise WeightTransferError(f"unknown weight-transfer backend {backend!r}; known: {', '.join(BACKENDS)}")
        if backend == "nccl" and not torch.cuda.is_available():
            raise WeightTransferError("weight transfer over nccl needs the learner on a GPU (cluster.num_learner_gpus > 0)")
        host = ray.util.get_node_ip_address()
        world = 1 + len(generators) * ranks_per_generator
        self.client = GeneratorsClient(generators, ranks_per_generator, timeout_s)
        info = _trainer_info(backend, host, free_port(host), world, timeout_s)
        self.engine = WeightTransferTrainerFactory.trainer_init(info, client=self.client, source=ModuleSource(module))

    def send(self, policy: str, version: int) -> None:
        self.client.serving = (policy, version)
        self.engine.send_weights()

    def close(self) -> None:
        self.engine.shutdown()
        self.client.shutdown()


def _trainer_info(backend: str, host: str, port: int, world: int, timeout_s: float) -> Any:
    if backend == "gloo":
        from actors.gloo_transfer import GlooTrainerInitInfo, register

        register()
        return GlooTrainerInitInfo(master_address=host, master_port=port, world_size=world, rank=0, timeout_s=timeout_s)
    from vllm.distributed.weight_transfer.nccl_engine import NCCLTrainerInitInfo

    return NCCLTrainerInitInfo(master_address=host, master_port=port, world_size=world, rank=0)
