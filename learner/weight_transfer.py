"""The learner's side of vLLM's weight-transfer engine: its weights straight to the generators.

On GPUs (backend `nccl`) the learner broadcasts its parameters over NCCL to every
current-policy generator at once, instead of copying them through Ray's object store; on CPU
the `gloo` backend (actors/gloo_transfer.py) runs the same handshake over TCP. vLLM's trainer
engine drives the protocol (rendezvous, start / update / finish on every engine, metadata
checked against what is sent); `GeneratorsClient` is how it reaches our generator actors: every
call has a deadline, and the first generator to fail fails the step with its own error.

Before a group opens, every generator says how it was started (backend, tensor-parallel ranks,
dtype): a mismatch is an error naming it, not a rendezvous that waits for ranks that never come.
Parameters travel in the generators' dtype (bf16 engines get bf16, half the bytes of the
learner's fp32). NCCL's rendezvous store has vLLM's own 300 s deadline and an NCCL broadcast
none: a peer stuck inside one is caught by the pool's deadline on the whole call.

The group is fixed to the generators it was opened with: the pool re-opens it when its
generators change (`actors.pool.GeneratorPool`).
"""
from __future__ import annotations

import random
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ray
import torch
from vllm.distributed.weight_transfer.base import ModuleSource, ParamMeta, materialize_full_tensor
from vllm.distributed.weight_transfer.factory import WeightTransferTrainerFactory

BACKENDS = ("nccl", "gloo")


class WeightTransferError(RuntimeError):
    """A weight transfer could not start or did not finish in time."""


class GeneratorsClient:
    """vLLM's `VLLMWeightSyncClient` over our generator actors (actors.generator.Generator).

    Each generator runs `ranks_per_generator` vLLM workers (its tensor-parallel size), so the
    i-th one's workers take ranks 1 + i * ranks_per_generator onwards (the learner is rank 0).
    `finish_weight_update` also tells each generator which policy and version it now serves.
    (vLLM's own `RayVLLMWeightSyncClient` sends every actor the same rank offset, as data-parallel
    replicas of one engine need, and waits without a deadline.)
    """

    def __init__(self, generators: list[Any], ranks_per_generator: int, timeout_s: float) -> None:
        self.generators, self.stride, self.timeout_s = list(generators), ranks_per_generator, timeout_s
        self.serving: tuple[str, int] = ("current", 0)

    def _wait(self, refs: list[Any], step: str) -> list[Any]:
        """Every generator's answer, in order; the first error raised as it comes (the others'
        calls are not waited for), or a `WeightTransferError` at the deadline."""
        deadline, pending = time.monotonic() + self.timeout_s, list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1, timeout=max(0.0, deadline - time.monotonic()))
            if not ready:
                raise WeightTransferError(
                    f"weight transfer: {step} on {len(refs)} generator(s) did not finish within {self.timeout_s:g} s"
                )
            ray.get(ready)
        return ray.get(refs)

    def check_setup(self, backend: str) -> str:
        """Every generator started for this transfer (backend, ranks) and serving one dtype; returns it."""
        setups = self._wait([g.transfer_setup.remote() for g in self.generators], "reporting their setup")
        for i, (theirs, ranks, _dtype) in enumerate(setups):
            if theirs != backend or ranks != self.stride:
                raise WeightTransferError(
                    f"generator {i} of the group was started with weight_transfer={theirs!r} and tensor_parallel_size={ranks}, "
                    f"but the group is {backend!r} with {self.stride} rank(s) per generator: start every generator with "
                    f"EngineSpec(weight_transfer={backend!r}, tensor_parallel_size={self.stride})"
                )
        dtypes = {dtype for _, _, dtype in setups}
        if len(dtypes) > 1:
            raise WeightTransferError(f"the generators of one group serve in different dtypes {sorted(dtypes)}; give them one")
        return dtypes.pop()

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
        """Release the group on every generator still alive (a dead one has nothing to release,
        and a stuck one is dropped from the group either way)."""
        refs = [g.shutdown_weight_transfer_engine.remote() for g in self.generators]
        ray.wait(refs, num_returns=len(refs), timeout=self.timeout_s)


def free_port(host: str) -> int:
    """A TCP port free on `host` now, for the group's rendezvous store. Drawn at random below the
    kernel's ephemeral range: a port from that range (what binding port 0 gives) can be handed to
    one of Ray's outgoing connections before the store listens on it (seen: EADDRINUSE when three
    learners opened their groups at once)."""
    low = _ephemeral_low()
    draw = random.SystemRandom()
    for _ in range(100):
        port = draw.randrange(max(1024, low - 10_000), low)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # all taken: any port the kernel gives
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _ephemeral_low() -> int:
    """The lowest port of the kernel's ephemeral range (Linux's default 32768 where unreadable)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


class WeightSender:
    """The trainer end of one transfer group: opened once per set of generators, then `send`
    each time the learner has new weights."""

    def __init__(self, backend: str, module: torch.nn.Module, generators: list[Any], ranks_per_generator: int,
                 timeout_s: float) -> None:
        if backend not in BACKENDS:
            raise WeightTransferError(f"unknown weight-transfer backend {backend!r}; known: {', '.join(BACKENDS)}")
        if backend == "nccl" and not torch.cuda.is_available():
            raise WeightTransferError("weight transfer over nccl needs the learner on a GPU (cluster.num_learner_gpus > 0)")
        host = ray.util.get_node_ip_address()
        world = 1 + len(generators) * ranks_per_generator
        self.client = GeneratorsClient(generators, ranks_per_generator, timeout_s)
        wire = getattr(torch, self.client.check_setup(backend), None)
        source = CastSource(module, wire if isinstance(wire, torch.dtype) else None)
        info = _trainer_info(backend, host, free_port(host), world, timeout_s)
        self.engine = WeightTransferTrainerFactory.trainer_init(info, client=self.client, source=source)

    def send(self, policy: str, version: int) -> None:
        self.client.serving = (policy, version)
        self.engine.send_weights()

    def close(self) -> None:
        self.engine.shutdown()
        self.client.shutdown()


class CastSource(ModuleSource):
    """vLLM's `ModuleSource`, floating-point parameters sent in the engines' dtype (`.to` of a
    tensor already in it is the tensor itself: no copy for fp32 engines; None: as they are). A parameter under two
    names (an output head tied to the input embeddings) goes under both: a reload that lacks the
    head's name puts back the head the engine held before (actors/weight_sync.py)."""

    def __init__(self, module: torch.nn.Module, dtype: torch.dtype | None) -> None:
        super().__init__(module)
        self.dtype = dtype

    def metadata(self) -> list[ParamMeta]:
        return [ParamMeta(name, self.dtype if self.dtype and p.dtype.is_floating_point else p.dtype, tuple(p.shape))
                for name, p in self._module.named_parameters(remove_duplicate=False)]

    def __iter__(self) -> Iterator[tuple[str, torch.Tensor]]:
        for name, param in self._module.named_parameters(remove_duplicate=False):
            tensor = materialize_full_tensor(param)
            yield name, tensor.to(self.dtype) if self.dtype and tensor.is_floating_point() else tensor


def _trainer_info(backend: str, host: str, port: int, world: int, timeout_s: float) -> Any:
    if backend == "gloo":
        from actors.gloo_transfer import GlooTrainerInitInfo, register

        register()
        return GlooTrainerInitInfo(master_address=host, master_port=port, world_size=world, rank=0, timeout_s=timeout_s)
    from vllm.distributed.weight_transfer.nccl_engine import NCCLTrainerInitInfo

    return NCCLTrainerInitInfo(master_address=host, master_port=port, world_size=world, rank=0)
