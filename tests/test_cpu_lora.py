"""actors/cpu_lora.py against vLLM's reference LoRA ops on random adapters: equal wherever a
token has an adapter, for a decode step's few tokens and a prefill's many; zero (no adapter
added) where it has none, which vLLM's ops answer with the last slot's adapter."""
import pytest
import torch
from vllm.lora.ops.torch_ops import lora_ops as reference

from actors import cpu_lora

SLOTS, RANK, HIDDEN, OUT = 4, 8, 32, 48


@pytest.mark.parametrize("slots", [SLOTS, 1])  # 1: an engine serving the current policy's adapter alone
@pytest.mark.parametrize("tokens", [5, cpu_lora.BLOCK_TOKENS + 40])
def test_grouped_ops_equal_vllms_and_leave_tokens_without_an_adapter_alone(tokens: int, slots: int) -> None:
    g = torch.Generator().manual_seed(tokens)
    a, b = torch.randn(slots, 1, RANK, HIDDEN, generator=g), torch.randn(slots, 1, OUT, RANK, generator=g)
    x, low = torch.randn(tokens, HIDDEN, generator=g), torch.randn(tokens, RANK, generator=g)
    indices = torch.randint(-1, slots, (tokens,), generator=g)
    indices[:2] = torch.tensor([-1, slots - 1])  # both kinds present whatever the draw
    has = indices >= 0

    ours, theirs = torch.zeros(tokens, RANK), torch.zeros(tokens, RANK)
    cpu_lora.bgmv_shrink(x, a, ours, indices, 0.5)
    reference.bgmv_shrink(x, a, theirs, indices, 0.5)
    assert torch.allclose(ours[has], theirs[has], atol=1e-4) and not ours[~has].any()
    assert theirs[~has].any()  # vLLM's took the last slot for them

    base = torch.randn(tokens, OUT + 4, generator=g)
    ours, theirs = base.clone(), base.clone()
    cpu_lora.bgmv_expand(low, b, ours, indices, add_inputs=True)
    reference.bgmv_expand(low, b, theirs, indices, add_inputs=True)
    assert torch.allclose(ours[has], theirs[has], atol=1e-4) and torch.equal(ours[~has], base[~has])

    ours, theirs = base.clone(), base.clone()
    cpu_lora.bgmv_expand_slice(low, b, ours, indices, 2, OUT, add_inputs=True)
    reference.bgmv_expand_slice(low, b, theirs, indices, 2, OUT, add_inputs=True)
    assert torch.allclose(ours[has], theirs[has], atol=1e-4) and torch.equal(ours[~has], base[~has])
