"""LoRA for the learner (`learner.lora` in a recipe), through peft.

With LoRA the policy is the base model with low-rank adapters, and only the adapters train:
the optimizer holds their state alone. The reference is the same base with a second, frozen
adapter (`reference`), no second copy of the weights: it starts as the base (its B is zero), and
refreshing the reference copies the policy's adapter into it, so "the reference follows the
policy every N iterations" means what it means without LoRA, the optimizer goes on, and the
base never changes (every version of the policy is the one base plus an adapter).

Checkpoints get merged weights under the base model's own names (W + the adapter's delta,
computed, the base never modified), so vLLM and transformers load them unchanged; so do the
current policy's generators with `broadcast: merged`. With `broadcast: adapter` they get the base
once (again only when it changes: a fold, a reset, a resume) and then the adapter alone, served
as a LoRARequest on that base (actors/generator.py): 18.6 MB a step at rank 16 on SmolLM2-135M, not 513.
A resumable state holds the merged weights as its checkpoint and the base and the adapters beside them.

With `snapshots: adapters` (the default) the league's frozen snapshots are adapters instead:
the warm-up is folded into the base before v0 is frozen, so v0 is the base and every later
snapshot (the exploiters' too, which start from v0) is an adapter on it, saved in peft's format.
One vLLM engine on v0 then serves the whole league, an adapter per request (actors/generator.py).

Not yet: LoRA over vLLM's weight-transfer engine (the recipe is refused; the object store carries
merged weights or adapters).
"""
from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, model_validator

from cluster.section import RecipeSection

if TYPE_CHECKING:  # torch and peft load with the learner, not with a recipe
    import torch
    from peft import PeftModel

ADAPTER, REFERENCE = "default", "reference"
VLLM_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # the adapter ranks vLLM's engines are built for (max_lora_rank)


class LoRAOptions(RecipeSection):
    """Low-rank adapters on the policy (peft's LoraConfig)."""

    rank: int = Field(16, ge=1, description="the adapters' rank r")
    alpha: float = Field(32.0, gt=0, description="scaling: the update is alpha / rank x B A")
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: Annotated[list[str], Field(min_length=1)] | Literal["all-linear"] = Field(
        "all-linear", description="module names to adapt (q_proj, v_proj, ...), or every linear layer but the output head"
    )
    snapshots: Literal["adapters", "merged"] = Field(
        "adapters", description="the league's snapshots as adapters on v0, served by one engine (adapters), or as full checkpoints (merged)"
    )
    max_adapters: int = Field(8, ge=1, description="snapshot adapters one engine batch holds (vLLM's max_loras); more are swapped in")
    broadcast: Literal["merged", "adapter"] = Field(
        "merged", description="the current policy to its generators as full merged weights every step, or as its adapter on the base"
    )

    @model_validator(mode="after")
    def _servable(self) -> LoRAOptions:
        served = [what for what, on in (("snapshots: adapters", self.snapshots == "adapters"), ("broadcast: adapter", self.broadcast == "adapter")) if on]
        if served and self.rank > VLLM_RANKS[-1]:
            raise ValueError(f"vLLM serves adapters of rank {VLLM_RANKS[-1]} at most ({served[0]}): lower learner.lora.rank, or set "
                             "learner.lora.snapshots: merged and broadcast: merged")
        if self.broadcast == "adapter" and self.snapshots != "adapters":
            raise ValueError("learner.lora.broadcast: adapter serves every version as an adapter on v0, so the snapshots are adapters too: "
                             "set learner.lora.snapshots: adapters, or broadcast: merged")
        return self

    @property
    def served_rank(self) -> int:
        """vLLM's max_lora_rank for these adapters: the smallest it is built for that holds them."""
        return next(r for r in VLLM_RANKS if r >= self.rank)


def with_adapters(model: torch.nn.Module, options: LoRAOptions) -> PeftModel:
    """`model` with a fresh trainable adapter and a frozen reference adapter (both B zero: the
    policy and the reference start equal to the base); the trainable one is active."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=options.rank, lora_alpha=options.alpha, lora_dropout=options.dropout, target_modules=options.target_modules)
    peft_model = get_peft_model(model, config, adapter_name=ADAPTER)
    peft_model.add_adapter(REFERENCE, config)
    peft_model.set_adapter(ADAPTER)  # trainable; the reference's weights stay frozen
    return peft_model


@contextmanager
def reference_adapter(model: PeftModel) -> Iterator[None]:
    """The reference adapter active (and the model in eval mode) for a forward pass without gradients."""
    model.eval()
    model.set_adapter(REFERENCE)
    try:
        yield
    finally:
        model.set_adapter(ADAPTER)  # which also makes the policy's adapter the trainable one again
        model.train()


def merged_weights(model: PeftModel) -> dict[str, torch.Tensor]:
    """The policy's full weights under the base model's names: each adapted layer's W + delta."""
    from peft.tuners.lora import LoraLayer

    deltas = {f"{name}.weight": module.get_delta_weight(ADAPTER) for name, module in model.get_base_model().named_modules()
              if isinstance(module, LoraLayer)}
    out = {}
    for key, value in base_weights(model).items():
        out[key] = (value + deltas[key].to(value.dtype)).detach() if key in deltas else value
    return out


def fold_adapter(model: PeftModel) -> None:
    """Add the policy's adapter into the base and zero both adapters' B (A stays, so training
    goes on as from a fresh adapter): the policy is unchanged, and it is now the base."""
    import torch
    from peft.tuners.lora import LoraLayer

    with torch.no_grad():
        for module in model.get_base_model().modules():
            if isinstance(module, LoraLayer) and ADAPTER in module.lora_A:
                weight = module.get_base_layer().weight
                weight += module.get_delta_weight(ADAPTER).to(weight.dtype)
        for name, param in model.named_parameters():
            if ".lora_B." in name or ".lora_embedding_B." in name:
                param.zero_()


@dataclass(frozen=True)
class AdapterFiles:
    """An adapter as peft saves it, in memory: what a generator writes to disk for vLLM's
    LoRARequest (which loads adapters from a directory) when the policy is broadcast as an adapter."""

    config: dict[str, Any]  # adapter_config.json
    weights: dict[str, torch.Tensor]  # adapter_model.safetensors, on the CPU

    def write(self, path: Path) -> Path:
        from safetensors.torch import save_file

        path.mkdir(parents=True, exist_ok=True)
        (path / "adapter_config.json").write_text(json.dumps(self.config, indent=2, sort_keys=True))
        save_file({k: v.contiguous() for k, v in self.weights.items()}, str(path / "adapter_model.safetensors"), metadata={"format": "pt"})
        return path


def adapter_files(model: PeftModel, base: str | None = None, weights: dict[str, torch.Tensor] | None = None) -> AdapterFiles:
    """The policy's adapter (or `weights`, as `adapter_weights` gave them) in peft's format,
    naming `base` (when given) as its base model; copies on the CPU, safe to ship."""
    config = copy.deepcopy(model.peft_config[ADAPTER])
    config.inference_mode = True
    if base is not None:
        config.base_model_name_or_path = str(Path(base).resolve())
    # as peft's own save_pretrained writes it: sets (target_modules resolved from all-linear) as lists
    fields = {k: sorted(v) if isinstance(v, set) else v for k, v in config.to_dict().items()}
    tensors = adapter_weights(model) if weights is None else weights
    return AdapterFiles(fields, {k: v.detach().to("cpu", copy=True) for k, v in tensors.items()})


def save_adapter(model: PeftModel, path: Path, base: str, weights: dict[str, torch.Tensor] | None = None) -> None:
    """The policy's adapter (or `weights`) on disk, naming `base` as its base model, so peft's
    `PeftModel.from_pretrained` and vLLM's `LoRARequest` load it as it is."""
    adapter_files(model, base, weights).write(path)


def base_weights(model: PeftModel) -> dict[str, torch.Tensor]:
    """The base model's weights under its own names, adapters left out."""
    return {key.replace(".base_layer.", "."): value for key, value in model.get_base_model().state_dict().items() if ".lora_" not in key}


def load_base_weights(model: PeftModel, weights: dict[str, torch.Tensor]) -> None:
    """Put `base_weights` back under the adapted model's own names (`q_proj.base_layer.weight`)."""
    base = model.get_base_model()
    names = {key.replace(".base_layer.", "."): key for key in base.state_dict() if ".lora_" not in key}
    if names.keys() != weights.keys():
        raise ValueError("the saved base weights do not fit this model: resume with the recipe the run was saved with")
    base.load_state_dict({names[key]: value for key, value in weights.items()}, strict=False)


def adapter_weights(model: PeftModel, adapter: str = ADAPTER) -> dict[str, torch.Tensor]:
    from peft import get_peft_model_state_dict

    return {key: value.detach().clone() for key, value in get_peft_model_state_dict(model, adapter_name=adapter).items()}


def load_adapter_weights(model: PeftModel, weights: dict[str, torch.Tensor], adapter: str = ADAPTER) -> None:
    """Copy `weights` (as `adapter_weights` gives them) into `adapter`'s parameters, in place."""
    from peft import set_peft_model_state_dict

    result = set_peft_model_state_dict(model, weights, adapter_name=adapter)
    missing = [k for k in result.missing_keys if ".lora_" in k and f".{adapter}." in k]  # the other adapter's are not loaded here
    differ = missing + [k for k in result.unexpected_keys if ".lora_" in k]
    if differ:
        raise ValueError(f"the saved adapters and these differ in {len(differ)} weights ({differ[0]}, ...): was the state saved with "
                         "other learner.lora options? Resume with the recipe the run was saved with")

