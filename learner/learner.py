"""The learner: one policy, its frozen reference, and an optimizer that lives across iterations.

Plain Python (the Ray actor only hosts it), so every step can be unit-tested without Ray.
"""
from __future__ import annotations

import contextlib
import copy
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from actors.weight_sync import EMBEDDINGS, HEAD
from learner.checkpoint import replace_dir_atomically
from learner.dpo import DPOLoss, dpo_loss
from learner.lora import (
    ADAPTER,
    REFERENCE,
    AdapterFiles,
    LoRAOptions,
    adapter_files,
    adapter_weights,
    base_weights,
    fold_adapter,
    load_adapter_weights,
    load_base_weights,
    merged_weights,
    reference_adapter,
    save_adapter,
    with_adapters,
)
from learner.mixing import PREFERENCE_COLUMNS, TRUNCATION_COLUMNS, count_source, load_preferences, mix_preferences, training_columns
from learner.sequences import encode_pairs, token_logps
from learner.shards import Shards, full_optimizer_state, full_weights, load_full_optimizer_state, load_full_weights, shard, sum_over_ranks
from learner.trajectories import RoleBaseline, gather_actions, kl_to_reference, reinforce_loss


@dataclass(frozen=True)
class DPOSettings:
    beta: float = 0.1
    learning_rate: float = 2e-4
    nll_weight: float = 1.0
    batch_size: int = 64
    epochs: int = 2
    max_grad_norm: float = 1.0
    weight_decay: float = 0.0
    ref_refresh_every: int = 3
    micro_batch_tokens: int | None = None  # padded tokens per forward pass; None: the whole batch at once
    gradient_checkpointing: bool = False
    precision: str = "auto"  # auto, fp32 or bf16 (autocast of the forward passes)
    answer_end: str | None = None  # what ends an answer in training: a chat template's end of turn; None: EOS
    baseline_decay: float = 0.95  # REINFORCE's moving-average baseline per game and seat (learner/trajectories.py)
    kl_weight: float = 0.0  # REINFORCE: weight of the KL to the reference on the action tokens
    loss_type: Sequence[str] = ("sigmoid",)  # DPO's loss family (learner/dpo.py), weighed by loss_weights (default 1 each)
    loss_weights: Sequence[float] | None = None
    label_smoothing: float = 0.0  # the `robust` and `exo_pair` terms

    @property
    def terms(self) -> list[tuple[str, float]]:
        """(loss type, weight) for every term, the `sft` term of nll_weight last."""
        weights = self.loss_weights or [1.0] * len(self.loss_type)
        return list(zip(self.loss_type, weights, strict=True)) + ([("sft", self.nll_weight)] if self.nll_weight else [])


@dataclass(frozen=True)
class WeightUpdate:
    """What a generator needs to serve a new policy version: checkpoint-format names and tensors,
    or with LoRA broadcast as an adapter, the adapter (and the base's weights when they changed)."""

    version: int
    weights: dict[str, torch.Tensor]
    adapter: AdapterFiles | None = None


class Learner:
    def __init__(self, model_path: str | Path, dpo: DPOSettings, seed: int = 0, device: str = "cpu", lora: LoRAOptions | None = None,
                 shards: Shards | None = None) -> None:
        # Ray pins OMP_NUM_THREADS to an actor's CPU reservation (1 for none); the learner runs
        # while the generators wait, so it takes every core this process may use.
        torch.set_num_threads(len(os.sched_getaffinity(0)))
        torch.manual_seed(seed)
        self.settings = dpo
        self.rng = np.random.default_rng(seed)
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        # "cuda" only when Ray gave the actor a GPU: Ray 2.60 no longer hides a node's GPUs from
        # an actor that asked for none, and those GPUs belong to the generators
        self.device = torch.device(device)
        self.lora, self.shards = lora, shards
        if shards and lora:
            raise ValueError("a sharded learner group (learner.ranks > 1) does not take learner.lora yet: set one of them")
        self.policy: Any = self._trainable(AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).to(self.device))
        # with LoRA the reference is the base with a frozen adapter of its own (learner/lora.py)
        self.reference = None if lora else self._frozen_copy()
        if shards:  # one policy over the group's ranks (learner/shards.py)
            shards.open(self.device)
            for model in (self.policy, self.reference):
                shard(model)
        self.autocast = _autocast(self.device, dpo.precision)
        self.optimizer = self._dpo_optimizer()
        self._sft_optimizer: torch.optim.Optimizer | None = None
        self._sft_steps = 0
        self._external: pa.Table | None = None
        self._external_ratio = 0.0
        self.baseline = RoleBaseline(dpo.baseline_decay)
        self.version = 0
        self.iterations = 0
        self._sender: Any = None  # a learner.weight_transfer.WeightSender while a transfer group is open
        # (version, copy) of what the generators serve, kept by `keep_served` for snapshots taken while training goes on
        self._served: tuple[int, dict[str, torch.Tensor]] | None = None
        self._keep_served = False
        self._base_sent = False  # with the policy broadcast as an adapter: whether the generators hold this base

    def _trainable(self, model: torch.nn.Module) -> Any:
        """`model` in training mode, with LoRA's adapters where the recipe asks for them."""
        if self.settings.gradient_checkpointing:  # activations recomputed in the backward pass: memory for time
            model.gradient_checkpointing_enable()
            if self.lora:
                model.enable_input_require_grads()  # the frozen embeddings must still pass gradients to the adapters
        model = with_adapters(model, self.lora) if self.lora else model
        model.train()
        return model

    def _dpo_optimizer(self) -> torch.optim.Optimizer:
        trained = [p for p in self.policy.parameters() if p.requires_grad]  # with LoRA: the adapters alone
        return torch.optim.AdamW(trained, lr=self.settings.learning_rate, weight_decay=self.settings.weight_decay)

    def _reference_logps(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The reference's per-token log-probabilities (no gradients)."""
        with torch.no_grad():
            if self.reference is not None:
                return token_logps(self.reference, batch)[0]
            with reference_adapter(self.policy):
                return token_logps(self.policy, batch)[0]

    def _frozen_copy(self) -> torch.nn.Module:
        reference = copy.deepcopy(self.policy).eval()
        for p in reference.parameters():
            p.requires_grad_(False)
        return reference

    def add_tokens(self, tokens: list[str]) -> int:
        """Add special tokens (skill tags) to the tokenizer and grow the embeddings to match;
        the reference and the optimizer are rebuilt on the new parameters. Returns the vocabulary size."""
        if self.lora:
            raise ValueError("new tokens need new embedding rows, which LoRA's adapters do not train: skill play needs learner.lora unset")
        self.tokenizer.add_special_tokens({"additional_special_tokens": tokens})
        self.policy.resize_token_embeddings(len(self.tokenizer))
        self.reference = self._frozen_copy()
        self.optimizer = self._dpo_optimizer()
        self._sft_optimizer = None
        return len(self.tokenizer)

    def mix_in(self, path: str | Path, ratio: float) -> int:
        """From now on every `train` call adds `ratio` external pairs per self-play pair; returns the rows loaded."""
        self._external = load_preferences(path)
        self._external_ratio = ratio
        return self._external.num_rows

    def reset_to(self, checkpoint: str | Path) -> int:
        """Start over from a checkpoint's weights (an exploiter after its snapshot joined the
        league): the reference follows, the optimizer starts afresh, and the version moves on (new
        weights, a new version; snapshot names stay unique). Returns the version."""
        start = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).to(self.device)
        if self.lora:
            self.policy = self._trainable(start)
            self._base_sent = False
        else:
            self._load_weights(self.policy, start.state_dict())
            self.refresh_reference()
        self.optimizer = self._dpo_optimizer()
        self.version += 1
        return self.version

    def _load_weights(self, model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> None:
        """Whole weights into `model` (each rank's shard of them, in a learner group)."""
        if self.shards:
            load_full_weights(model, weights)
        else:
            model.load_state_dict(weights)

    def refresh_reference(self) -> None:
        """The reference becomes the policy as it is now (with LoRA: its adapter copied into the reference's)."""
        if self.reference is not None:
            self.reference.load_state_dict(self.policy.state_dict())
        else:
            load_adapter_weights(self.policy, adapter_weights(self.policy), REFERENCE)

    def sft_steps(
        self, batches: list[tuple[list[str], list[str]]], learning_rate: float, warmup_steps: int = 100
    ) -> float:
        """Next-token training on the responses of (prompts, responses) batches; returns the mean loss.

        Runs in chunks so the driver can show progress; the reference follows the policy,
        because self-play starts from the SFT model.
        """
        if self._sft_optimizer is None:
            self._sft_optimizer = torch.optim.AdamW([p for p in self.policy.parameters() if p.requires_grad], lr=learning_rate)
        losses = []
        for prompts, responses in batches:
            batch = encode_pairs(self.tokenizer, prompts, responses, self.settings.answer_end)
            with self.autocast():
                per_token, mask = token_logps(self.policy, batch)
            loss = -per_token.sum() / mask.sum()
            self._sft_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            # Linear warm-up and clipping: without them a model trained from scratch at this
            # learning rate can spike back to its starting loss.
            self._sft_steps += 1
            for group in self._sft_optimizer.param_groups:
                group["lr"] = learning_rate * min(1.0, self._sft_steps / warmup_steps)
            torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.settings.max_grad_norm)
            self._sft_optimizer.step()
            losses.append(loss.item())
        self.refresh_reference()
        return float(np.mean(losses)) if losses else 0.0

    @torch.no_grad()
    def greedy(self, prompts: list[str], max_new_tokens: int, stop: tuple[str, ...] = ()) -> list[str]:
        """The policy's greedy answers (what the task's metric scores during the warm-up, before
        any generator serves it). Prompts of one token length are batched together, so no
        padding can move a position."""
        ids = [self.tokenizer(p)["input_ids"] for p in prompts]
        answers: list[str] = [""] * len(prompts)
        by_length: dict[int, list[int]] = {}
        for i, row in enumerate(ids):
            by_length.setdefault(len(row), []).append(i)
        self.policy.eval()
        for idx in by_length.values():
            batch = torch.tensor([ids[i] for i in idx], device=self.device)
            out = self.policy.generate(
                input_ids=batch, attention_mask=torch.ones_like(batch), max_new_tokens=max_new_tokens, do_sample=False,
                eos_token_id=self.tokenizer.eos_token_id, pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
            )
            for i, row in zip(idx, out[:, batch.shape[1]:].tolist()):
                answers[i] = _cut(self.tokenizer.decode(row, skip_special_tokens=True), stop)
        self.policy.train()
        return answers

    def train(self, *tables: pa.Table, after: object = None) -> dict[str, float]:
        """One self-play iteration on what every game gave (each table one game's): DPO on pairs
        (`prompt`, `chosen`, `rejected`), DPO on episode pairs (`chosen_actions`, ...; see
        league/episodes.py) and REINFORCE on moves with rewards (`action`, `reward`).

        With nothing to learn from (every game a tie) nothing changes and the version stays.
        `after`: a call of this learner that must end first, as a Ray reference, which Ray
        resolves before this call runs (the run's saved state, asked for before this round:
        an actor with concurrency groups may otherwise run calls out of order).
        """
        start = time.perf_counter()
        stats: dict[str, list[float]] = {"loss": [], "dpo_loss": [], "nll": [], "reward_accuracy": [], "reward_margin": []}
        flat = [training_columns(t) for t in tables if "chosen" in t.column_names]
        pairs = pa.concat_tables(flat) if flat else training_columns(pa.table({c: pa.array([], pa.string()) for c in PREFERENCE_COLUMNS}))
        if self._external is not None:
            pairs = mix_preferences(pairs, self._external, self._external_ratio, self.rng)
        self._train_pairs(pairs, stats)
        episode_pairs = [t for t in tables if "chosen_actions" in t.column_names]
        moves = [t for t in tables if "reward" in t.column_names and "action" in t.column_names]
        for table in episode_pairs:
            self._in_batches(table.to_pylist(), self._trajectory_step, stats)
        for table in moves:
            rows = table.to_pylist()
            for row, advantage in zip(rows, self._advantages(rows)):
                row["advantage"] = advantage
            self._in_batches(rows, self._reinforce_step, stats)
        n = pairs.num_rows + sum(t.num_rows for t in episode_pairs + moves)
        if n:
            self.version += 1
        self.iterations += 1
        if self.settings.ref_refresh_every and self.iterations % self.settings.ref_refresh_every == 0:
            self.refresh_reference()
        summary = {key: float(np.mean(v)) if v else float("nan") for key, v in stats.items()}
        external = count_source(pairs, "external") if "source" in pairs.column_names else 0
        summary.update(
            pairs=float(n), external_pairs=float(external), steps=float(len(stats["loss"])), seconds=time.perf_counter() - start
        )
        return summary

    def _train_pairs(self, pairs: pa.Table, stats: dict[str, list[float]]) -> None:
        s, n = self.settings, pairs.num_rows
        if n:
            prompts, chosen, rejected = (pairs.column(c).to_pylist() for c in ("prompt", "chosen", "rejected"))
            ended = [not c for c in pairs.column(TRUNCATION_COLUMNS[0]).to_pylist()] + [
                not r for r in pairs.column(TRUNCATION_COLUMNS[1]).to_pylist()]
            for _ in range(s.epochs):
                order = self.rng.permutation(n)
                for begin in range(0, n, s.batch_size):
                    idx = order[begin : begin + s.batch_size]
                    out = self._dpo_step([prompts[i] for i in idx], [chosen[i] for i in idx], [rejected[i] for i in idx],
                                         [ended[i] for i in idx] + [ended[n + i] for i in idx])
                    for key, value in out.items():
                        stats[key].append(value)

    def _in_batches(self, rows: list[dict[str, Any]], step: Callable[[list[dict[str, Any]]], dict[str, float]],
                    stats: dict[str, list[float]]) -> None:
        """`epochs` passes over `rows` in shuffled batches of `batch_size`, one optimizer step each."""
        for _ in range(self.settings.epochs if rows else 0):
            order = self.rng.permutation(len(rows))
            for begin in range(0, len(rows), self.settings.batch_size):
                for key, value in step([rows[i] for i in order[begin : begin + self.settings.batch_size]]).items():
                    stats.setdefault(key, []).append(value)

    def _advantages(self, moves: list[dict[str, Any]]) -> list[float]:
        """Each move's advantage: its episode's, the baseline read and updated once per episode and seat, in order."""
        seen: dict[tuple[str, int], float] = {}
        for m in moves:
            key = (m["episode_id"], m["seat"])
            if key not in seen:
                seen[key] = self.baseline.advantage(m["game"], m["seat"], m["reward"])
        return [seen[(m["episode_id"], m["seat"])] for m in moves]

    def _moves_logps(self, prompts: list[str], actions: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-token log-probabilities of each move's action under the policy and the reference, and the mask."""
        batch = encode_pairs(self.tokenizer, prompts, actions, self.settings.answer_end)
        with self.autocast():
            per_token, mask = token_logps(self.policy, batch)
            ref = self._reference_logps(batch)
        return per_token, ref, mask

    def _trajectory_step(self, rows: list[dict[str, Any]]) -> dict[str, float]:
        """One DPO step on episode pairs, each side's log-probability the sum over its action
        tokens; gradients accumulated over micro-batches of whole pairs (`micro_batch_tokens`)."""
        sides = [(r[f"{side}_prompts"], r[f"{side}_actions"]) for side in ("chosen", "rejected") for r in rows]
        lengths = self._lengths([p for ps, _ in sides for p in ps], [a for _, acts in sides for a in acts])
        k, counts = len(rows), [len(acts) for _, acts in sides]
        bounds = np.cumsum([0, *counts])
        chosen_tokens = sum(actions for _, actions in lengths[: bounds[k]])
        items = [(counts[i] + counts[k + i], max(t for t, _ in lengths[bounds[i]:bounds[i + 1]] + lengths[bounds[k + i]:bounds[k + i + 1]]))
                 for i in range(k)]
        self.optimizer.zero_grad(set_to_none=True)
        totals = {"loss": 0.0, "dpo_loss": 0.0, "nll": 0.0, "reward_accuracy": 0.0, "reward_margin": 0.0}
        for idx in self._micro_batches(items):
            out = self._trajectory_loss([rows[i] for i in idx], k, chosen_tokens)
            out.loss.backward()
            for key, value in (("loss", out.loss.item()), ("dpo_loss", out.dpo.item()), ("nll", out.nll.item()),
                               ("reward_accuracy", out.reward_accuracy * len(idx) / k), ("reward_margin", out.reward_margin * len(idx) / k)):
                totals[key] += value
        self._step()
        return totals

    def _trajectory_loss(self, rows: list[dict[str, Any]], batch_pairs: int, batch_chosen_tokens: int) -> DPOLoss:
        k = len(rows)
        prompts, actions, owners = [], [], []
        for side, offset in (("chosen", 0), ("rejected", k)):
            for i, r in enumerate(rows):
                prompts += r[f"{side}_prompts"]
                actions += r[f"{side}_actions"]
                owners += [offset + i] * len(r[f"{side}_actions"])
        per_token, ref, mask = self._moves_logps(prompts, actions)
        tokens, keep = gather_actions(per_token, mask, owners, 2 * k)
        ref_sums = gather_actions(ref, mask, owners, 2 * k)[0].sum(-1)
        return dpo_loss(tokens[:k], tokens[k:], keep[:k], keep[k:], ref_sums[:k], ref_sums[k:], self.settings.beta, self.settings.terms,
                        self.settings.label_smoothing, batch_pairs=batch_pairs, batch_chosen_tokens=batch_chosen_tokens)

    def _reinforce_step(self, rows: list[dict[str, Any]]) -> dict[str, float]:
        """One REINFORCE step on moves that carry their advantage; gradients accumulated over
        micro-batches of moves (`micro_batch_tokens`), the losses weighed as one whole batch's."""
        lengths = self._lengths([r["prompt"] for r in rows], [r["action"] for r in rows])
        action_tokens = max(1, sum(actions for _, actions in lengths))
        self.optimizer.zero_grad(set_to_none=True)
        totals = {"loss": 0.0, "pg_loss": 0.0, "kl": 0.0}
        for idx in self._micro_batches([(1, total) for total, _ in lengths]):
            sub = [rows[i] for i in idx]
            per_token, ref, mask = self._moves_logps([r["prompt"] for r in sub], [r["action"] for r in sub])
            advantages = torch.tensor([r["advantage"] for r in sub], dtype=per_token.dtype, device=per_token.device)
            pg = reinforce_loss(per_token, mask, advantages) * len(sub) / len(rows)  # a mean over the whole batch's moves
            kl = kl_to_reference(per_token, ref, mask) * mask.sum() / action_tokens  # and over its action tokens
            loss = pg + self.settings.kl_weight * kl if self.settings.kl_weight else pg
            loss.backward()
            totals["loss"] += loss.item()
            totals["pg_loss"] += pg.item()
            totals["kl"] += kl.item()
        self._step()
        return {**totals, "mean_advantage": float(np.mean([r["advantage"] for r in rows]))}

    def _lengths(self, prompts: list[str], answers: list[str]) -> list[tuple[int, int]]:
        """Each (prompt, answer)'s tokens in all and its scored answer tokens, as training encodes it."""
        batch = encode_pairs(self.tokenizer, prompts, answers, self.settings.answer_end)
        return list(zip(batch["attention_mask"].sum(-1).tolist(), batch["completion_mask"][:, 1:].sum(-1).tolist(), strict=True))

    def _step(self) -> None:
        torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.settings.max_grad_norm)
        self.optimizer.step()

    def _dpo_step(self, prompts: list[str], chosen: list[str], rejected: list[str], ended: list[bool]) -> dict[str, float]:
        """One optimizer step on the batch, its gradients accumulated over micro-batches of at most
        `micro_batch_tokens` padded tokens each (a pair's two answers always share one). `ended`
        (chosen's flags, then rejected's) is false for an answer cut off at the token limit: it
        is trained on without an end of answer, so the policy does not learn to stop mid-answer."""
        k = len(prompts)
        end = self.settings.answer_end
        whole = encode_pairs(self.tokenizer, prompts + prompts, chosen + rejected, end, ended)
        chosen_tokens = int(whole["completion_mask"][:k, 1:].sum())  # scored tokens: position t predicts t + 1
        self.optimizer.zero_grad(set_to_none=True)
        totals = {"loss": 0.0, "dpo_loss": 0.0, "nll": 0.0, "reward_accuracy": 0.0, "reward_margin": 0.0}
        lengths = whole["attention_mask"].sum(-1).tolist()
        for group in self._micro_batches([(2, max(lengths[i], lengths[k + i])) for i in range(k)]):
            idx, weight = self._share(group)
            sub = [prompts[i] for i in idx]
            batch = encode_pairs(self.tokenizer, sub + sub, [chosen[i] for i in idx] + [rejected[i] for i in idx], end,
                                 [ended[i] for i in idx] + [ended[k + i] for i in idx])
            with self.autocast():
                per_token, mask = token_logps(self.policy, batch)
                ref = self._reference_logps(batch).sum(-1)
            m = len(idx)
            out = dpo_loss(per_token[:m], per_token[m:], mask[:m], mask[m:], ref[:m], ref[m:], self.settings.beta, self.settings.terms,
                           self.settings.label_smoothing, batch_pairs=k, batch_chosen_tokens=chosen_tokens)
            (out.loss * weight).backward()
            if weight:  # a group rank's stand-in row (weight 0) counts in no statistic
                totals["loss"] += out.loss.item()
                totals["dpo_loss"] += out.dpo.item()
                totals["nll"] += out.nll.item()
                totals["reward_accuracy"] += out.reward_accuracy * m / k
                totals["reward_margin"] += out.reward_margin * m / k
        self._step()
        return sum_over_ranks(totals, self.device) if self.shards else totals

    def _share(self, rows: list[int]) -> tuple[list[int], float]:
        """The rows of a micro-batch this process trains on, and the weight of their loss. In a
        learner group each rank takes its share, its loss times the group's size (FSDP averages
        the ranks' gradients; the loss is already normalized by the whole batch); a rank with no
        share still runs a forward pass (FSDP's collectives need every rank's), on a row weighed 0."""
        if not self.shards:
            return rows, 1.0
        mine = self.shards.mine(rows)
        return (mine, float(self.shards.world)) if mine else (rows[:1], 0.0)

    def _micro_batches(self, items: list[tuple[int, int]]) -> list[list[int]]:
        """Items, each (its rows, its longest row's tokens), grouped in order so each group's padded
        size (rows x longest) fits `micro_batch_tokens`; one group without a budget."""
        budget = self.settings.micro_batch_tokens
        if budget is None:
            return [list(range(len(items)))]
        groups: list[list[int]] = [[]]
        rows = longest = 0
        for i, (n, length) in enumerate(items):
            if groups[-1] and (rows + n) * max(longest, length) > budget:
                groups.append([])
                rows = longest = 0
            groups[-1].append(i)
            rows, longest = rows + n, max(longest, length)
        return groups

    def publish(self, served: bool = False) -> WeightUpdate:
        """The current weights under their checkpoint names, detached copies safe to ship. With
        `served`, for a generator joining the others: the version they serve, which is the copy
        `keep_served` kept when a later version has been trained since."""
        if self._adapter_broadcast:
            return self._adapter_update(served)
        if served and self._served is not None and not self._adapter_snapshots:
            return WeightUpdate(*self._served)
        update = WeightUpdate(self.version, _shipped(self.weights()))
        if not served:
            self._keep(update.weights)
        return update

    def _adapter_update(self, served: bool) -> WeightUpdate:
        """The policy as its adapter, with the base's weights when the generators may not hold
        them: a generator joining (`served`), or the base changed since the last broadcast."""
        version, kept = self._served if served and self._served is not None else (self.version, None)
        base = _shipped(base_weights(self.policy)) if served or not self._base_sent else {}
        update = WeightUpdate(version, base, adapter_files(self.policy, weights=kept))
        if not served:
            self._base_sent = True
            self._keep()
        return update

    def keep_served(self) -> None:
        """From now on keep a copy of the weights each broadcast sends (the adapter alone with LoRA
        snapshots as adapters), so that `save_snapshot` can freeze the version the generators
        serve while the learner trains the next one (the asynchronous pipeline, cluster/overlap.py).
        Called when the generators serve the learner's weights as they are now, which it keeps first."""
        self._keep_served = True
        self._keep()

    def _keep(self, sent: dict[str, torch.Tensor] | None = None) -> None:
        if not self._keep_served:
            return
        if self._adapter_snapshots:
            kept = adapter_weights(self.policy)
        else:
            kept = sent if sent is not None else {k: v.detach().to("cpu", copy=True) for k, v in self.weights().items()}
        if self.shards and self.shards.rank:  # in a learner group rank 0 alone writes snapshots: the others keep which version, not a copy
            kept = {}
        self._served = (self.version, kept)

    @property
    def _adapter_snapshots(self) -> bool:
        return bool(self.lora and self.lora.snapshots == "adapters")

    @property
    def _adapter_broadcast(self) -> bool:
        return bool(self.lora and self.lora.broadcast == "adapter")

    def weights(self) -> dict[str, torch.Tensor]:
        """The policy's full weights under the model's own names (with LoRA: merged, learner/lora.py;
        in a learner group: gathered whole, every rank calling)."""
        if self.shards:
            return full_weights(self.policy)
        return merged_weights(self.policy) if self.lora else self.policy.state_dict()

    def open_transfer(self, backend: str, generators: list, ranks_per_generator: int, timeout_s: float) -> None:
        """A vLLM weight-transfer group (`nccl` on GPUs, `gloo` on CPU) from this learner to
        `generators` (actor handles), replacing any group opened before."""
        from learner.weight_transfer import WeightSender  # vLLM's transfer engine: loaded only by a learner that uses it

        self.close_transfer()
        self._sender = WeightSender(backend, self.policy, generators, ranks_per_generator, timeout_s)

    def send_weights(self, policy: str = "current") -> int:
        """The current weights to every generator of the open group, served as this version of
        `policy`; returns the version."""
        if self._sender is None:
            from learner.weight_transfer import WeightTransferError

            raise WeightTransferError("no weight-transfer group is open; call open_transfer first")
        self._sender.send(policy, self.version)
        self._keep()
        return self.version

    def close_transfer(self) -> None:
        if self._sender is not None:
            self._sender, sender = None, self._sender
            sender.close()

    def save_checkpoint(self, path: str | Path, weights: dict[str, torch.Tensor] | None = None) -> str:
        """A Hugging Face checkpoint of the current policy (or of `weights` under its names),
        written beside `path` then renamed into place (in a learner group every rank gathers the
        weights, rank 0 writes them)."""
        weights = self.weights() if weights is None else weights

        def write(tmp: Path) -> None:
            model = self.policy.get_base_model() if self.lora else self.policy
            model.save_pretrained(tmp, state_dict=weights)
            self.tokenizer.save_pretrained(tmp)

        return self._written_by_rank0(path, write)

    def _written_by_rank0(self, path: str | Path, write: Callable[[Path], None]) -> str:
        """`path` written by `write` into a new directory renamed into place: by this learner, or in
        a learner group by rank 0 alone (the others only took part in gathering what it holds)."""
        if self.shards and self.shards.rank:
            return str(path)
        return str(replace_dir_atomically(Path(path), write))

    def save_snapshot(self, path: str | Path, base: str | Path, version: int | None = None) -> str:
        """A frozen snapshot as the league serves it: with LoRA snapshots as adapters, the
        policy's adapter on `base` (v0, see `fold_adapter`); otherwise a full checkpoint. With
        `version`, of that version as it was served (`keep_served`), even while a later one trains."""
        kept = None
        if version is not None and self._served is not None and self._served[0] == version:
            kept = self._served[1]
        elif version is not None and version != self.version:
            raise ValueError(f"no weights of version {version} to snapshot: the learner is at version {self.version} and keeps "
                             f"{'no served copy' if self._served is None else f'version {self._served[0]} as served'}")
        if not self._adapter_snapshots:
            return self.save_checkpoint(path, kept)
        return str(replace_dir_atomically(Path(path), lambda tmp: save_adapter(self.policy, tmp, str(base), kept)))

    def fold_adapter(self) -> None:
        """Make the policy as it is now (after a LoRA warm-up) the base its adapters start from, so
        that v0 is the base of every snapshot adapter; the reference follows and the optimizer
        starts afresh. Nothing to do without LoRA."""
        if self.lora:
            fold_adapter(self.policy)
            self.optimizer = self._dpo_optimizer()
            self._sft_optimizer = None
            self._base_sent = False

    def save_state(self, path: str | Path) -> str:
        """Everything a resumed run needs to go on exactly where this one is: the policy (a
        Hugging Face checkpoint), the reference's weights, the DPO optimizer's state, the
        counters and the sampling generator. Written beside `path`, then renamed into place."""

        weights = self.weights()  # in a learner group each of these three gathers the shards, every rank calling
        reference = full_weights(self.reference) if self.shards else None
        optimizer = full_optimizer_state(self.policy, self.optimizer) if self.shards else self.optimizer.state_dict()

        def write(tmp: Path) -> None:
            if self.lora:  # the policy as served (what a resumed run's generators load), the base and adapters beside it
                self.policy.get_base_model().save_pretrained(tmp / "policy", state_dict=weights)
                torch.save(base_weights(self.policy), tmp / "base.pt")
                torch.save({name: adapter_weights(self.policy, name) for name in (ADAPTER, REFERENCE)}, tmp / "adapters.pt")
            else:
                self.policy.save_pretrained(tmp / "policy", state_dict=weights)
                torch.save(reference if reference is not None else self.reference.state_dict(), tmp / "reference.pt")
            self.tokenizer.save_pretrained(tmp / "policy")
            torch.save(optimizer, tmp / "optimizer.pt")
            counters = {"version": self.version, "iterations": self.iterations, "rng": self.rng.bit_generator.state,
                        "baseline": self.baseline.values, "ranks": self.shards.world if self.shards else 1}
            (tmp / "learner.json").write_text(json.dumps(counters))

        return self._written_by_rank0(path, write)

    def load_state(self, path: str | Path) -> int:
        """Take up a state written by `save_state` (the learner must have been built from its
        `policy/` checkpoint, which holds the weights); returns the policy version."""
        path = Path(path)
        counters = json.loads((path / "learner.json").read_text())
        saved, now = counters.get("ranks", 1), self.shards.world if self.shards else 1
        if (saved > 1) != (now > 1):  # the optimizer's state is keyed by name in a group, by position alone
            raise ValueError(f"{str(path)!r} was saved by a learner of {saved} rank(s), not {now}: a learner group and a single learner "
                             "keep the optimizer's state differently; resume with the recipe's learner.ranks as saved")
        if self.reference is not None:
            self._load_weights(self.reference, torch.load(path / "reference.pt", weights_only=True, map_location=self.device))
        else:
            load_base_weights(self.policy, torch.load(path / "base.pt", weights_only=True, map_location=self.device))
            self._base_sent = False
            adapters = torch.load(path / "adapters.pt", weights_only=True, map_location=self.device)
            for name in (ADAPTER, REFERENCE):
                load_adapter_weights(self.policy, adapters[name], name)
        optimizer = torch.load(path / "optimizer.pt", weights_only=True, map_location=self.device)
        if self.shards:
            load_full_optimizer_state(self.policy, self.optimizer, optimizer)
        else:
            self.optimizer.load_state_dict(optimizer)
        self.version, self.iterations = counters["version"], counters["iterations"]
        self.rng.bit_generator.state = counters["rng"]
        self.baseline = RoleBaseline(self.settings.baseline_decay, counters.get("baseline"))
        return self.version


def _shipped(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached CPU copies of `weights` to send, an output head tied to the input embeddings left
    out (the same tensor: a sixth of SmolLM2-135M's bytes); the receiver restores it (actors/weight_sync.py)."""
    embedding = next((v for k, v in weights.items() if k.endswith(EMBEDDINGS)), None)
    tied = embedding is not None and HEAD in weights and weights[HEAD].data_ptr() == embedding.data_ptr()
    return {k: v.detach().to("cpu", copy=True) for k, v in weights.items() if not (tied and k == HEAD)}


def _autocast(device: torch.device, precision: str) -> Callable[[], contextlib.AbstractContextManager]:
    """The context the forward passes run in: bf16 autocast (fp32 master weights and optimizer,
    log-probabilities taken in fp32) or plain fp32. `auto` takes bf16 only on a GPU that has it:
    on a CPU without native bf16 it is several times slower than fp32."""
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    if precision == "fp32":
        return contextlib.nullcontext
    return lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def _cut(text: str, stop: tuple[str, ...]) -> str:
    """The answer up to its first stop string, as the generators end it."""
    ends = [text.find(s) for s in stop if s in text]
    return text[: min(ends)] if ends else text
