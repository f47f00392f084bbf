"""LoRA matmuls for vLLM's CPU backend, grouped by adapter.

vLLM's CPU engine applies adapters with its PyTorch reference ops (`vllm.lora.ops.torch_ops`),
which copy each token's adapter matrices out before one batched einsum: a prefill of a thousand
tokens copies a thousand of them per adapted layer, and the league's snapshot engine then spends
more time moving adapters than running the model. They also index the adapters with the
"no adapter" marker -1, which picks the last adapter slot: harmless while that slot is empty,
but once all `max_loras` slots hold snapshots, the base model's own requests (v0) are answered
with the last adapter added. These versions multiply each adapter's tokens by its matrices in
place of the copies, and leave the -1 tokens untouched. They replace the reference ops in the
process that runs the engine (the generator's, which keeps vLLM's engine core in-process), on
CPU only: GPU engines keep vLLM's kernels.
"""
from __future__ import annotations

import torch

_OPS = ("bgmv_shrink", "bgmv_expand", "bgmv_expand_slice")


BLOCK_TOKENS = 256  # up to this many tokens (decode steps) every adapter is applied at once; more (prefills) adapter by adapter


def _grouped(inputs: torch.Tensor, weights: torch.Tensor, indices: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Each token's `inputs` row times its adapter's matrix (weights: slots x out x in); rows of
    tokens without one stay zero. A decode step's few tokens go through every slot's matrices in
    one product, a handful of operations whatever the number of adapters (on CPU each operation's
    overhead, not its arithmetic, is the cost there); a prefill's many tokens, adapter by adapter."""
    if weights.dim() == 4:
        weights = weights.squeeze(1)
    inputs, weights = inputs.to(dtype), weights.to(dtype)
    slots, out_dim, in_dim = weights.shape
    if slots == 1:  # an engine serving one adapter (the current policy's, broadcast as an adapter): one product
        return (inputs @ weights[0].T) * (indices >= 0).to(dtype).unsqueeze(1)
    if inputs.shape[0] <= BLOCK_TOKENS:
        valid = (indices >= 0).to(dtype).unsqueeze(1)
        # each token's inputs in its own slot's block, zeros elsewhere: one product with every slot's matrix
        block = inputs.new_zeros(inputs.shape[0], slots, in_dim)
        block[torch.arange(inputs.shape[0]), indices.clamp(min=0)] = inputs * valid
        return block.view(inputs.shape[0], slots * in_dim) @ weights.permute(0, 2, 1).reshape(slots * in_dim, out_dim)
    out = inputs.new_zeros(inputs.shape[0], out_dim)
    for slot in indices.unique().tolist():
        if slot >= 0:
            rows = (indices == slot).nonzero().squeeze(1)
            out[rows] = inputs[rows] @ weights[slot].T
    return out


def bgmv_shrink(inputs: torch.Tensor, lora_a_weights: torch.Tensor, output_tensor: torch.Tensor, lora_indices_tensor: torch.Tensor,
                scaling: float = 1.0) -> None:
    out = _grouped(inputs, lora_a_weights, lora_indices_tensor, output_tensor.dtype)
    output_tensor[:, : out.shape[1]] = scaling * out


def bgmv_expand(inputs: torch.Tensor, lora_b_weights: torch.Tensor, output_tensor: torch.Tensor, lora_indices_tensor: torch.Tensor,
                add_inputs: bool = True) -> None:
    out = _grouped(inputs, lora_b_weights, lora_indices_tensor, output_tensor.dtype)
    limit = 1 if out.shape[0] == 1 and output_tensor.shape[0] != 1 else output_tensor.shape[0]
    common = min(out.shape[1], output_tensor.shape[1])  # an adapter and the model may pad differently
    if add_inputs:
        output_tensor[:, :common] += out[:limit, :common]
    else:
        output_tensor[:, :common] = out[:limit, :common]


def bgmv_expand_slice(inputs: torch.Tensor, lora_b_weights: torch.Tensor, output_tensor: torch.Tensor, lora_indices_tensor: torch.Tensor,
                      slice_offset: int, slice_size: int, add_inputs: bool = True) -> None:
    out = _grouped(inputs, lora_b_weights, lora_indices_tensor, output_tensor.dtype)
    if add_inputs:
        output_tensor[:, slice_offset : slice_offset + slice_size] += out
    else:
        output_tensor[:, slice_offset : slice_offset + slice_size] = out


def install() -> None:
    """Put these ops where vLLM's CPU LoRA wrapper and its segmented ops look them up (idempotent)."""
    from vllm.lora.ops.torch_ops import lora_ops
    from vllm.lora.punica_wrapper import punica_cpu

    for name in _OPS:
        for module in (lora_ops, punica_cpu):
            setattr(module, name, globals()[name])
