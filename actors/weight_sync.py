"""The receiving side of weight sync, mixed into vLLM's worker (`worker_extension_cls`).

On CPU, vLLM repacks linear layers after loading, so weights cannot be copied into the
model's parameters directly; the worker's `reload_weights` runs the loader's full path
(checkpoint names in, kernel layout out) for both in-memory tensors and checkpoints on disk.
"""
from __future__ import annotations

import torch


class WeightReceiver:
    """Methods vLLM adds to its worker; called through `LLM.collective_rpc`."""

    def receive_weights(self, weights: dict[str, torch.Tensor]) -> None:
        self.reload_weights(weights_iterator=iter(weights.items()), is_checkpoint_format=True)  # type: ignore[attr-defined]

    def receive_checkpoint(self, path: str) -> None:
        self.reload_weights(weights_path=path, is_checkpoint_format=True)  # type: ignore[attr-defined]

    def weights_checksum(self) -> float:
        """The sum of this worker's parameters in float64: engines holding the same weights agree
        exactly, so a test can tell which path delivered what without reading tensors back."""
        return float(sum(p.double().sum().item() for p in self.model_runner.get_model().parameters()))  # type: ignore[attr-defined]
