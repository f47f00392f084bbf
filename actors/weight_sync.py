"""The receiving side of weight sync, mixed into vLLM's worker (`worker_extension_cls`).

On CPU, vLLM repacks linear layers after loading, so weights cannot be copied into the
model's parameters directly; the worker's `reload_weights` runs the loader's full path
(checkpoint names in, kernel layout out) for both in-memory tensors and checkpoints on disk.

A model whose output head is tied to its input embeddings (SmolLM2, Qwen2.5-0.5B, Llama 3.2)
is saved without `lm_head.weight`, and a reload that lacks it puts back the head the engine held
before (vLLM's layerwise reload restores what it did not load), so the engine would answer with
new embeddings and a stale head. Every load here sends the embeddings under the head's name too.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import torch

HEAD, EMBEDDINGS = "lm_head.weight", "embed_tokens.weight"  # a tied head's name, and how its embeddings' name ends


def with_tied_head(weights: Iterable[tuple[str, torch.Tensor]], tied: bool) -> Iterator[tuple[str, torch.Tensor]]:
    """`weights` as they come, then, for a tied model that lacks its head, the embeddings as the head."""
    embedding, head = None, False
    for name, tensor in weights:
        head |= name == HEAD
        if name.endswith(EMBEDDINGS):
            embedding = tensor
        yield name, tensor
    if tied and not head and embedding is not None:
        yield HEAD, embedding


def checkpoint_tensors(path: str) -> Iterator[tuple[str, torch.Tensor]]:
    """A safetensors checkpoint's tensors, one file and one tensor at a time."""
    from safetensors import safe_open

    for file in sorted(Path(path).glob("*.safetensors")):
        with safe_open(str(file), "pt") as tensors:
            for name in tensors.keys():  # noqa: SIM118 (safe_open is not a mapping)
                yield name, tensors.get_tensor(name)


class WeightReceiver:
    """Methods vLLM adds to its worker; called through `LLM.collective_rpc`."""

    def receive_weights(self, weights: dict[str, torch.Tensor]) -> None:
        self._reload(iter(weights.items()))

    def receive_checkpoint(self, path: str) -> None:
        if not any(Path(path).glob("*.safetensors")):  # another format: vLLM's own loader reads it
            self.reload_weights(weights_path=path, is_checkpoint_format=True)  # type: ignore[attr-defined]
            return
        self._reload(checkpoint_tensors(path))

    def _reload(self, weights: Iterator[tuple[str, torch.Tensor]]) -> None:
        tied = bool(getattr(self.model_config.hf_text_config, "tie_word_embeddings", False))  # type: ignore[attr-defined]
        self.reload_weights(weights_iterator=with_tied_head(weights, tied), is_checkpoint_format=True)  # type: ignore[attr-defined]

    def weights_checksum(self) -> float:
        """The sum of this worker's parameters in float64: engines holding the same weights agree
        exactly, so a test can tell which path delivered what without reading tensors back."""
        return float(sum(p.double().sum().item() for p in self.model_runner.get_model().parameters()))  # type: ignore[attr-defined]
