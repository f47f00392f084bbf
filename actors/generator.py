"""A generator: one vLLM engine serving one policy version at a time.

Plain Python; `actors.actor.generator_actor` hosts it in a Ray actor. The current policy's
generator receives new weights after every learner step (with LoRA broadcast as an adapter: the
policy's adapter, served on the base it holds); an opponent generator switches between frozen
snapshots by loading their checkpoints, or, with LoRA snapshots, answers each request with its
snapshot's adapter: either way one engine serves a whole league.
"""
from __future__ import annotations

import gc
import itertools
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

WEIGHT_RECEIVER = "actors.weight_sync.WeightReceiver"
TOKEN_METRICS = ("selfplay_generated_tokens", "selfplay_generation_tokens_per_second")  # what each generator reports


class GeneratorError(RuntimeError):
    """A generator could not start or could not take new weights."""


class AdapterLike(Protocol):
    def write(self, path: Path) -> Path: ...


class WeightUpdateLike(Protocol):
    version: int
    weights: dict[str, torch.Tensor]  # empty: the engine keeps its weights (an adapter update on the base it holds)
    adapter: AdapterLike | None


@dataclass(frozen=True)
class EngineSpec:
    model_path: str
    dtype: str = "float32"
    max_model_len: int = 64
    kv_cache_bytes: int = 64 * 2**20
    seed: int = 0
    weight_transfer: str | None = None  # a vLLM weight-transfer backend (nccl, gloo) the learner sends over; None: object store
    tensor_parallel_size: int = 1  # > 1: vLLM's Ray executor, in the placement group the actor was started in
    gpu_memory_utilization: float = 0.9  # vLLM's share of the GPU (less when the generator has part of one)
    max_loras: int = 0  # > 0: serve LoRA adapters on this model (snapshots; the current policy), this many in one batch
    max_lora_rank: int = 16  # the largest adapter rank it takes (one of vLLM's: 8, 16, 32, ...)
    shared: bool = False  # also answers as snapshots (`generate_as`), going back to its own weights after


@dataclass(frozen=True)
class Sampling:
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 8
    stop: tuple[str, ...] = ()  # strings that end an answer (left out of it)


GREEDY = Sampling(temperature=0.0)


class Generator:
    def __init__(self, spec: EngineSpec, policy: str = "current", version: int = 0) -> None:
        # The engine core must live in this process: the weight receiver is called in-process,
        # and several engines share one machine without spawning a process each.
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        from vllm import LLM

        # vLLM's engine start runs gc.collect several times, each walking every object the imports
        # above made (module state, kept for good): frozen first, an engine starts ~1.2 s sooner on CPU
        gc.freeze()
        if not (Path(spec.model_path) / "config.json").is_file():
            raise GeneratorError(f"no Hugging Face checkpoint at {spec.model_path!r} (config.json missing)")
        if spec.max_loras and not torch.cuda.is_available():
            from actors.cpu_lora import install

            install()  # vLLM's CPU LoRA ops, grouped by adapter (actors/cpu_lora.py)
        self.spec = spec
        self.llm = LLM(
            model=spec.model_path,
            dtype=spec.dtype,
            max_model_len=spec.max_model_len,
            kv_cache_memory_bytes=spec.kv_cache_bytes,
            enforce_eager=True,
            seed=spec.seed,
            worker_extension_cls=WEIGHT_RECEIVER,
            weight_transfer_config=_transfer_config(spec.weight_transfer),
            tensor_parallel_size=spec.tensor_parallel_size,
            gpu_memory_utilization=spec.gpu_memory_utilization,
            distributed_executor_backend="ray" if spec.tensor_parallel_size > 1 else None,
            **_lora_serving(spec),
            **_cpu_workarounds(),
        )
        self.policy = policy
        self.version = version
        self._metrics = _token_metrics()
        self._tokens = 0  # generated since the last take_tokens: the driver's tokens/s per round
        self._adapter_ids: dict[str, int] = {}  # vLLM tells adapters apart by an integer id
        self._new_ids = itertools.count(1)
        self._current: Any = None  # the LoRARequest of the policy this engine serves, when it came as an adapter
        # what a shared engine reloads after a snapshot's answers: its checkpoint, or the last weights it was sent
        self._own: str | dict[str, torch.Tensor] | None = spec.model_path if spec.shared else None

    def serving(self) -> tuple[str, int]:
        """The policy name and version this engine answers with now."""
        return self.policy, self.version

    def generate(self, prompts: list[str], sampling: Sampling, seeds: list[int] | None = None) -> list[str]:
        """One completion per prompt; `seeds` makes each one reproducible (and distinct per side)."""
        return [out.text for out in self._complete(prompts, sampling, seeds)]

    def generate_finished(self, prompts: list[str], sampling: Sampling, seeds: list[int] | None = None) -> list[tuple[str, bool]]:
        """As `generate`, each answer with whether it was cut off at `max_new_tokens` (vLLM's
        finish reason `length`) rather than ended by EOS or a stop string."""
        return [(out.text, out.finish_reason == "length") for out in self._complete(prompts, sampling, seeds)]

    def generate_tokens(self, prompts: list[str], sampling: Sampling, seeds: list[int] | None = None) -> list[list[int]]:
        """As `generate`, but the completion's token ids (EOS included when generation stopped on it)."""
        return [list(out.token_ids) for out in self._complete(prompts, sampling, seeds)]

    def _complete(self, prompts: list[str], sampling: Sampling, seeds: list[int] | None, adapters: list | None = None) -> list:
        """vLLM's outputs; `adapters` names a LoRARequest (or None: the base) per prompt."""
        from vllm import SamplingParams

        if not prompts:
            return []
        per_prompt = seeds if seeds is not None else [None] * len(prompts)
        params = [
            SamplingParams(
                temperature=sampling.temperature, top_p=sampling.top_p, max_tokens=sampling.max_new_tokens, seed=seed,
                stop=list(sampling.stop) or None,
            )
            for seed in per_prompt
        ]
        start = time.perf_counter()
        requests = self._current if adapters is None else adapters
        outs = [out.outputs[0] for out in self.llm.generate(prompts, params, use_tqdm=False, lora_request=requests)]
        n = sum(len(o.token_ids) for o in outs)
        self._tokens += n
        if self._metrics is not None:
            tokens, rate = self._metrics
            label = {"policy": "snapshots" if adapters else self.policy}
            tokens.inc(n, label)
            rate.set(n / max(time.perf_counter() - start, 1e-9), label)
        return outs

    def take_tokens(self) -> int:
        """Tokens generated since the last call (completions only, not prompts)."""
        n, self._tokens = self._tokens, 0
        return n

    def load_weights(self, update: WeightUpdateLike, policy: str = "current") -> int:
        """Swap in new weights (checkpoint names), or an adapter on the weights held (a new base
        first when it comes with one), and serve them as `update.version` of the learning agent
        `policy` (the current policy, or with league roles an exploiter)."""
        adapter = getattr(update, "adapter", None)
        if adapter is not None and not self.spec.max_loras:
            raise GeneratorError("the policy came as a LoRA adapter, but this engine was started without LoRA serving (max_loras 0)")
        if update.weights:
            self.llm.collective_rpc("receive_weights", args=(update.weights,))
            self.llm.reset_prefix_cache()
            # what a shared engine reloads after a snapshot's answers (with adapters it never leaves its own weights)
            self._own = update.weights if self.spec.shared and not self.spec.max_loras else None
        self._serve_adapter(adapter, f"{policy}-v{update.version}")
        self.policy, self.version = policy, update.version
        return self.version

    def _serve_adapter(self, adapter: AdapterLike | None, name: str) -> None:
        """Answer from now on with `adapter` on the engine's weights (None: the weights alone),
        loaded now so that a bad adapter fails the sync, not the next round; the one it replaces
        is dropped from the engine and from disk."""
        from vllm.lora.request import LoRARequest

        old, new = self._current, None
        if adapter is not None:
            lora_id = next(self._new_ids)
            path = adapter.write(Path(tempfile.mkdtemp(prefix=f"selfplay-{name}-")))
            new = LoRARequest(f"{name}#{lora_id}", lora_id, str(path))  # a name per load: vLLM keys adapters by name too
            try:
                self.llm.llm_engine.add_lora(new)
            except Exception:
                shutil.rmtree(path, ignore_errors=True)
                raise
        self._current = new
        if old is not None:
            self.llm.llm_engine.remove_lora(old.lora_int_id)
            shutil.rmtree(old.lora_path, ignore_errors=True)

    # vLLM's weight-transfer engine (learner/weight_transfer.py drives these through GeneratorsClient)
    def transfer_setup(self) -> tuple[str | None, int, str]:
        """What a transfer group must agree on: the backend this engine was started with, its
        ranks (tensor-parallel workers) and the dtype it serves in."""
        return self.spec.weight_transfer, self.spec.tensor_parallel_size, self.spec.dtype

    def init_weight_transfer_engine(self, init_info: dict) -> None:
        self.llm.init_weight_transfer_engine({"init_info": init_info})

    def start_weight_update(self) -> None:
        self.llm.start_weight_update()

    def update_weights(self, update_info: dict) -> None:
        self.llm.update_weights({"update_info": update_info})

    def finish_weight_update(self, policy: str, version: int) -> int:
        """The transferred weights are in: serve them as `version` of `policy`."""
        self.llm.finish_weight_update()
        self.llm.reset_prefix_cache()
        self.policy, self.version = policy, version
        self._own = None  # streamed into the engine: nothing in this process to reload them from
        return version

    def shutdown_weight_transfer_engine(self) -> None:
        self.llm.shutdown_weight_transfer_engine()

    def weights_checksum(self) -> float:
        """The sum of every weight the engine holds (over all tensor-parallel ranks)."""
        return float(sum(self.llm.collective_rpc("weights_checksum")))

    def load_checkpoint(self, path: str, policy: str, version: int) -> int:
        """Serve the weights of a Hugging Face checkpoint on disk (a frozen snapshot)."""
        if not (Path(path) / "config.json").is_file():
            raise GeneratorError(f"snapshot {policy!r}: no checkpoint at {path!r}")
        self.llm.collective_rpc("receive_checkpoint", args=(path,))
        self.llm.reset_prefix_cache()
        self.policy, self.version = policy, version
        return self.version

    def generate_as(
        self,
        prompts: list[str],
        policies: list[str],
        checkpoints: dict[str, tuple[str, int]],
        sampling: Sampling,
        seeds: list[int],
    ) -> list[tuple[str, bool]]:
        """Answer each prompt as the snapshot named beside it, loading each snapshot once; each
        answer as (text, cut off at the token limit), as `generate_finished` gives them. A
        `shared` engine (the current policy's, when snapshots have no engines of their own) then
        reloads its own weights and serves its own version again.

        `checkpoints` maps a snapshot name to (checkpoint path, version). The engine's own
        policy goes first so a single-opponent league never reloads. An engine serving adapters
        answers every snapshot in one batch instead, each prompt with its snapshot's adapter.
        """
        if self.spec.max_loras:
            requests = {name: self._adapter(name, checkpoints[name][0]) for name in set(policies)}  # one per snapshot
            adapters = [requests[name] for name in policies]
            return [(out.text, out.finish_reason == "length") for out in self._complete(prompts, sampling, seeds, adapters)]
        own, own_policy, own_version = self._own, self.policy, self.version
        if self.spec.shared and own is None:
            raise GeneratorError("this engine takes weights over a transfer engine, so it cannot go back to them after a "
                                 "snapshot's answers: give snapshots engines of their own (generator.snapshot_replicas >= 1)")
        try:
            return self._answer_as(prompts, policies, checkpoints, sampling, seeds)
        finally:  # a snapshot that failed half-loaded too: the engine is the current policy's first
            if self.spec.shared and own is not None and set(policies) - {own_policy}:
                self._reload_own(own, own_policy, own_version)

    def _answer_as(self, prompts: list[str], policies: list[str], checkpoints: dict[str, tuple[str, int]], sampling: Sampling,
                   seeds: list[int]) -> list[tuple[str, bool]]:
        responses: list[tuple[str, bool]] = [("", False)] * len(prompts)
        names = sorted(set(policies), key=lambda name: name != self.policy)
        for name in names:
            if name != self.policy:
                path, version = checkpoints[name]
                self.load_checkpoint(path, name, version)
            idx = [i for i, p in enumerate(policies) if p == name]
            outs = self.generate_finished([prompts[i] for i in idx], sampling, [seeds[i] for i in idx])
            for i, answer in zip(idx, outs):
                responses[i] = answer
        return responses

    def _reload_own(self, weights: str | dict[str, torch.Tensor], policy: str, version: int) -> None:
        """A shared engine's own weights back after a snapshot's answers (through the loader, as
        any weights reach a vLLM engine on CPU: see actors/weight_sync.py)."""
        method = "receive_checkpoint" if isinstance(weights, str) else "receive_weights"
        self.llm.collective_rpc(method, args=(weights,))
        self.llm.reset_prefix_cache()
        self.policy, self.version = policy, version

    def _adapter(self, name: str, path: str) -> Any:
        """The LoRARequest for a snapshot saved as an adapter; None for the engine's own model (v0)."""
        from vllm.lora.request import LoRARequest

        if Path(path).resolve() == Path(self.spec.model_path).resolve():
            return None
        if not (Path(path) / "adapter_config.json").is_file():
            raise GeneratorError(
                f"snapshot {name!r} at {path!r} is not a LoRA adapter (adapter_config.json missing), but this engine serves the "
                "league as adapters on its model: a run whose snapshots are full checkpoints needs learner.lora.snapshots: merged"
            )
        if name not in self._adapter_ids:
            self._adapter_ids[name] = next(self._new_ids)
        return LoRARequest(name, self._adapter_ids[name], str(path))


def _lora_serving(spec: EngineSpec) -> dict[str, Any]:
    """vLLM's LoRA arguments for an engine serving adapters: snapshots, the policy's, or both (none otherwise)."""
    if not spec.max_loras:
        return {}
    # a shared engine keeps the current policy's adapter in its CPU cache beside a full batch of the league's
    return {"enable_lora": True, "max_loras": spec.max_loras, "max_lora_rank": spec.max_lora_rank,
            "max_cpu_loras": spec.max_loras + (1 if spec.shared else 0)}


def _cpu_workarounds() -> dict[str, Any]:
    """vLLM-CPU engine arguments. A prefill split across engine steps (chunked prefill: any step
    with more prompt tokens than the batch budget, 4096) rewinds the seeded requests' torch
    generators, which CPU generators refuse ("CPU Generator does not use offset"), crashing the
    engine; whole prefills avoid it. GPU engines keep vLLM's defaults."""
    return {} if torch.cuda.is_available() else {"enable_chunked_prefill": False}


def kv_bytes_per_token(model_path: str | Path, dtype: str) -> int | None:
    """KV-cache bytes one token takes in an engine serving `model_path` in `dtype` (None when its
    config does not say), so a context too long for the cache is refused before vLLM starts."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_path)
    try:
        heads = config.num_attention_heads
        kv_heads = getattr(config, "num_key_value_heads", None) or heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        layers = config.num_hidden_layers
    except AttributeError:
        return None
    return 2 * layers * kv_heads * head_dim * (4 if dtype == "float32" else 2)


def _transfer_config(backend: str | None):
    """vLLM's weight-transfer config for `backend` (None: weights come through the object store)."""
    if backend is None:
        return None
    from vllm.config import WeightTransferConfig

    if backend == "gloo":
        from actors.gloo_transfer import register

        register()
    return WeightTransferConfig(backend=backend)


def _token_metrics() -> tuple | None:
    """Tokens generated (a counter) and the latest call's tokens/s (a gauge), per served policy,
    for the dashboard; None outside a Ray worker."""
    import ray

    if not ray.is_initialized():
        return None
    from ray.util.metrics import Counter, Gauge

    return (
        Counter(TOKEN_METRICS[0], "tokens generated", tag_keys=("policy",)),
        Gauge(TOKEN_METRICS[1], "tokens/s of the latest generate call", tag_keys=("policy",)),
    )
