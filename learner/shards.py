"""One policy over several learner processes (`learner.ranks`), sharded with PyTorch's FSDP2.

Each rank holds a 1/N shard of the policy's weights, gradients and AdamW state, and of the
reference: what lets a model past one device's memory train. Every rank runs the same learner
code on the same data order (one seed); a DPO batch is split between the ranks (each takes its
share of every micro-batch, so all ranks run the same number of forward passes, which FSDP's
collectives need), and the other steps (SFT warm-up, episode pairs, REINFORCE) run whole on every
rank, so FSDP's averaged gradients are exactly the single learner's either way. Weights leave
the group gathered whole (`full_weights`), a saved state holds them whole too, so a group of any
size (not a single learner: its optimizer state is keyed by position, the group's by name)
resumes it. On CPU the group talks over gloo, on GPUs over NCCL.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Shards:
    """This process's place in a learner group: its rank, the group's size and rank 0's address."""

    rank: int
    world: int
    address: str  # tcp://host:port

    def open(self, device: torch.device) -> None:
        """Join the group's process group (waits until every rank has)."""
        import torch.distributed as dist

        if not dist.is_initialized():
            backend = "nccl" if device.type == "cuda" else "gloo"
            dist.init_process_group(backend, init_method=self.address, rank=self.rank, world_size=self.world)

    def mine(self, rows: list[int]) -> list[int]:
        """This rank's share of a micro-batch's rows (maybe none)."""
        return rows[self.rank :: self.world]


def shard(model: torch.nn.Module) -> None:
    """FSDP2 over each transformer block (the model's `_no_split_modules`), then the whole model."""
    from torch.distributed.fsdp import fully_shard

    blocks = set(getattr(model, "_no_split_modules", None) or [])
    for module in model.modules():
        if type(module).__name__ in blocks:
            fully_shard(module)
    fully_shard(model)


def full_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every weight whole, on every rank (a collective: every rank calls it)."""
    return {key: value.full_tensor() if hasattr(value, "full_tensor") else value for key, value in model.state_dict().items()}


def load_full_weights(model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> None:
    """Whole weights (every rank holds them) into a sharded model: each rank keeps its shard."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    set_model_state_dict(model, weights, options=StateDictOptions(full_state_dict=True))


def full_optimizer_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer's state whole, keyed by parameter name, on rank 0 (empty elsewhere)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    return get_optimizer_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def load_full_optimizer_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=True))


def sum_over_ranks(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Each value summed over the group's ranks."""
    import torch.distributed as dist

    keys = sorted(values)
    total = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(total)
    return dict(zip(keys, total.tolist()))
