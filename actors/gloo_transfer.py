"""A `gloo` backend for vLLM's weight-transfer engine, so the GPU path runs on CPU too.

On GPUs, weights go from the learner to the generators through vLLM's own weight-transfer
engine with its `nccl` backend. NCCL needs GPUs, so without this module that path (the
rendezvous, the per-generator ranks, the start/update/finish handshake, re-forming the group
when the fleet changes, the timeouts) could only be tested on a GPU machine. This backend is
vLLM's dense NCCL engine with the communicator swapped for a torch gloo process group over
TCP: everything above the wire is vLLM's code and ours, unchanged. Registered under `gloo`
in both of vLLM's factories (the worker's and the trainer's) by `register()`.

Packed by default, as vLLM's NCCL engine is: the trainer packs parameters into ~1 GB byte
buffers with vLLM's own `pack_tensors`, each engine cuts the same buffers from the metadata and
loads each buffer's tensors in one `load_weights` call (one broadcast and one load per buffer,
not per tensor). Without CUDA streams there is no double buffering: a buffer is packed, sent
and loaded before the next.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar

import torch
from torch.distributed import BroadcastOptions, ProcessGroupGloo, TCPStore
from vllm.distributed.weight_transfer.factory import WeightTransferEngineFactory, WeightTransferTrainerFactory
from vllm.distributed.weight_transfer.nccl_common import NCCLWeightTransferInitInfo, worker_init_payload
from vllm.distributed.weight_transfer.nccl_engine import (
    NCCLTrainerInitInfo,
    NCCLTrainerWeightTransferEngine,
    NCCLWeightTransferEngine,
    NCCLWeightTransferUpdateInfo,
)
from vllm.distributed.weight_transfer.packed_tensor import pack_tensors

BACKEND = "gloo"
DEFAULT_TIMEOUT_S = 300.0


class GlooGroup:
    """The two calls vLLM's NCCL engines make on their communicator (`broadcast`, `destroy`),
    over a gloo process group of its own: it never touches torch.distributed's global group,
    which the vLLM worker in the same process already uses."""

    def __init__(self, host: str, port: int, rank: int, world_size: int, timeout_s: float) -> None:
        timeout = timedelta(seconds=timeout_s)
        self.store = TCPStore(host, port, world_size, is_master=rank == 0, timeout=timeout)
        self.group: ProcessGroupGloo | None = ProcessGroupGloo(self.store, rank, world_size, timeout)

    def broadcast(self, tensor: torch.Tensor, src: int, stream: Any = None) -> None:
        if self.group is None:
            raise RuntimeError("the gloo weight-transfer group was shut down")
        opts = BroadcastOptions()
        opts.rootRank, opts.rootTensor = src, 0
        self.group.broadcast([tensor], opts).wait()

    def destroy(self) -> None:
        self.group = None


@dataclass(kw_only=True)
class GlooWeightTransferInitInfo(NCCLWeightTransferInitInfo):
    """NCCL's worker init info (address, port, rank offset, world size, the packing the trainer
    chose), and how long the rendezvous and each broadcast may wait for the peers before failing."""

    timeout_s: float = DEFAULT_TIMEOUT_S


class GlooWeightTransferEngine(NCCLWeightTransferEngine):
    """The inference side: vLLM's dense NCCL engine (layerwise reload around each update) over gloo."""

    init_info_cls = GlooWeightTransferInitInfo

    def init_transfer_engine(self, init_info: GlooWeightTransferInitInfo) -> None:  # type: ignore[override]
        self.packed, self.packed_buffer_size_bytes = init_info.packed, init_info.packed_buffer_size_bytes
        p = self.parallel_config
        rank = p.data_parallel_index * p.world_size + p.rank + init_info.rank_offset
        assert init_info.master_address is not None and init_info.master_port is not None
        self.model_update_group = GlooGroup(  # type: ignore[assignment]
            init_info.master_address, init_info.master_port, rank, init_info.world_size, init_info.timeout_s
        )

    def update_weights(self, update_info: dict[str, Any]) -> None:
        # the base class synchronizes the accelerator afterwards; on CPU there is none
        self.receive_weights(self.parse_update_info(update_info))

    def receive_weights(self, update_info: NCCLWeightTransferUpdateInfo) -> None:
        if self.model_update_group is None:
            raise RuntimeError("gloo weight transfer not initialized: call init_weight_transfer_engine first")
        meta = [(name, shape, getattr(torch, dtype)) for name, dtype, shape in
                zip(update_info.names, update_info.dtype_names, update_info.shapes)]
        limit = self.packed_buffer_size_bytes if self.packed else 0  # 0: every tensor a buffer of its own
        for names, shapes, dtypes, sizes in buffers(meta, limit):
            packed = torch.empty(sum(sizes), dtype=torch.uint8, device=self.device)
            self.model_update_group.broadcast(packed, src=0)
            self.model.load_weights(unpack(packed, names, shapes, dtypes, sizes))


def unpack(packed: torch.Tensor, names: list[str], shapes: list, dtypes: list, sizes: list[int]) -> list[tuple[str, torch.Tensor]]:
    """vLLM's `unpack_tensor`, except that a tensor whose bytes do not start on a multiple of its
    element size (after an odd number of bf16 values, say) is copied out instead of failing."""
    out = []
    for name, shape, dtype, part in zip(names, shapes, dtypes, packed.split(sizes)):
        if part.storage_offset() % dtype.itemsize:
            part = part.clone()
        out.append((name, part.view(dtype).view(shape)))
    return out


def buffers(meta: list[tuple[str, list[int], torch.dtype]], limit: int) -> Iterator[tuple[list, list, list, list[int]]]:
    """The receiving side of `pack_tensors`: the same buffers, cut from the metadata alone (a
    buffer closes once it holds more than `limit` bytes). Yields names, shapes, dtypes, byte sizes."""
    chunk: list[tuple[str, list[int], torch.dtype, int]] = []
    total = 0
    for name, shape, dtype in meta:
        chunk.append((name, list(shape), dtype, math.prod(shape) * dtype.itemsize))
        total += chunk[-1][3]
        if total > limit:
            yield tuple(map(list, zip(*chunk)))  # type: ignore[misc]
            chunk, total = [], 0
    if chunk:
        yield tuple(map(list, zip(*chunk)))  # type: ignore[misc]


@dataclass
class GlooTrainerInitInfo(NCCLTrainerInitInfo):
    backend: ClassVar[str] = BACKEND
    timeout_s: float = DEFAULT_TIMEOUT_S


class GlooTrainerWeightTransferEngine(NCCLTrainerWeightTransferEngine):
    """The trainer side: vLLM's NCCL trainer engine (rendezvous on a side thread, the workers'
    `update_weights` running beside the broadcast, metadata checked against what is sent) over gloo."""

    init_info_cls = GlooTrainerInitInfo

    @classmethod
    def trainer_init(cls, init_info: GlooTrainerInitInfo, *, client: Any, source: Any = None) -> GlooTrainerWeightTransferEngine:
        """As vLLM's, except that a generator failing to join fails the rendezvous at once,
        instead of after the trainer's side has waited out its deadline."""
        from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

        if source is None:
            raise ValueError("gloo trainer weight transfer requires a WeightSource")
        engine = cls(client=client, source=source, is_sender=init_info.is_sender, packed=init_info.packed,
                     packed_buffer_size_bytes=init_info.packed_buffer_size_bytes)
        worker = GlooWeightTransferInitInfo(
            master_address=init_info.master_address, master_port=init_info.master_port, rank_offset=1,
            world_size=init_info.world_size, packed=init_info.packed, packed_buffer_size_bytes=init_info.packed_buffer_size_bytes,
            timeout_s=init_info.timeout_s,
        )
        exe = ThreadPoolExecutor(max_workers=2)
        joined = exe.submit(client.init_weight_transfer_engine, worker_init_payload(worker))
        opened = exe.submit(GlooGroup, init_info.master_address, init_info.master_port, 0, init_info.world_size, init_info.timeout_s)
        done, _ = wait([joined, opened], return_when=FIRST_EXCEPTION)
        exe.shutdown(wait=False)  # a side still waiting gives up at its own deadline
        for future in done:
            future.result()
        engine.model_update_group = opened.result()  # type: ignore[assignment]
        joined.result()
        return engine

    def _broadcast(self, source: Any, meta: list) -> None:
        assert self.model_update_group is not None, "trainer_init() must be called before _broadcast()"
        pairs = self._checked_iter(source, meta)
        limit = self.packed_buffer_size_bytes if self.packed else 0
        while (chunk := pack_tensors(pairs, lambda item: item[1].detach(), limit)) is not None:
            self.model_update_group.broadcast(chunk.packed_tensor, src=0)


def register() -> None:
    """Make `gloo` a weight-transfer backend in this process (idempotent); the generator and the
    learner call it before they build an engine."""
    if BACKEND not in WeightTransferEngineFactory._registry:
        WeightTransferEngineFactory.register_engine(BACKEND, GlooWeightTransferEngine)
    if BACKEND not in WeightTransferTrainerFactory._registry:
        WeightTransferTrainerFactory.register_engine(BACKEND, GlooTrainerWeightTransferEngine)
