"""The staged pipeline: SFT, a reward model, self-play rounds and DPO, callable one by one.

`selfplay run` chains these stages in its own loop; `RLHFPipeline` is for a researcher who
wants to run them one at a time from Python, look at the data between them, and bring their
own at any point (SFT rows, preference pairs, a trained reward model). Every stage writes into
the same run directory as `selfplay run` does, and the actors are the same ones.

    with RLHFPipeline(load_recipe()) as pipe:
        pipe.run_sft()                          # TRL SFTTrainer on the task (or your rows)
        pipe.run_reward_model_training()        # TRL RewardTrainer; it becomes the judge
        for _ in range(3):
            pairs = pipe.run_self_play(n_games=512, refinement_iterations=1)
            pipe.run_policy_optimization(method="dpo", data=pairs)
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import ray

from cluster.config import RunConfig, load_recipe, to_yaml, with_run_dir
from cluster.orchestrator import Orchestrator, base_model, context_length, format_row
from cluster.retention import retention_tasks, sft_problems
from cluster.run import check_resources, connect
from cluster.run_dir import RunDir, write_text_atomic
from games.base import registry
from learner.mixing import as_preferences, as_text_columns
from learner.trl_stages import COMPLETION_COLUMNS, StageSettings, train_reward_model, train_sft
from prompts.chat import PromptRenderer
from tasks.addition import AdditionTask, wrong_answer

METHODS = ("dpo",)
Rows = "pa.Table | list[dict] | str | Path"


class PipelineError(RuntimeError):
    """A stage called out of order or with data it cannot use; the message says what to do."""


class RLHFPipeline:
    """One run directory, its actors, and the stages that fill it."""

    def __init__(self, config: RunConfig | None = None, overwrite: bool = False, show_progress: bool = True) -> None:
        self.config = with_run_dir(config or load_recipe())
        self.show_progress = show_progress
        self._orchestrator: Orchestrator | None = None
        self._started_ray = connect(self.config)
        try:
            if not self.config.cluster.address:
                check_resources(self.config)
            self.run = RunDir.create(self.config, overwrite=overwrite)
        except BaseException:
            self.close()
            raise
        cfg = self.config
        try:
            self.task = cfg.task.build(cfg.seed)
            self.policy_path: Path = base_model(cfg, self.run, show_progress)
        except BaseException:
            self.run.restore_old()
            self.close()
            raise
        self.run.keep_new()
        self.rng = np.random.default_rng(cfg.seed)
        self.render = PromptRenderer.for_model(self.policy_path, cfg.model.chat_template, cfg.model.system_prompt)
        self.round = 0
        self._last_pairs: pa.Table | None = None
        self._last_fields: dict[str, Any] = {}

    def __enter__(self) -> RLHFPipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop this run's actors (and Ray, when this pipeline started it)."""
        if self._orchestrator is not None:
            self._orchestrator.stop()
            self._orchestrator = None
        if self._started_ray:
            ray.shutdown()
            self._started_ray = False

    # ------------------------------------------------------------------ stages
    def run_sft(self, data: Rows | None = None) -> dict[str, float]:
        """Supervised fine-tuning with TRL's SFTTrainer on (prompt, completion) rows (by default
        `sft.steps x sft.batch_size` training problems of the task); the result, in `model/sft/`,
        is the policy every later stage starts from."""
        if self._orchestrator is not None:
            raise PipelineError(
                "run_sft must come before run_self_play: the generators already serve the policy; "
                "start a new RLHFPipeline (or run SFT first) to fine-tune it"
            )
        s = self.config.sft
        if s.steps == 0:
            raise PipelineError("sft.steps is 0, so there is nothing to train; set sft.steps (TRL's max_steps)")
        if data is None:
            extra = retention_tasks(self.config)
            problems = sft_problems(self.task, extra, s.retention_share, max(s.steps, 1) * s.batch_size, self.rng)
            table = pa.table({"prompt": [self.render(p) for p in problems], "completion": [p.answer for p in problems]})
        else:
            table = as_text_columns(data, COMPLETION_COLUMNS, "SFT data")
        out = self.run.root / "model" / "sft"
        settings = self._stage(s.steps, s.batch_size, s.learning_rate, s.warmup_steps)
        stats = self._on_learner_resources(train_sft, str(self.policy_path), table, str(out), settings)
        self.policy_path = out
        self._log("sft", stats, rows=table.num_rows)
        return stats

    def run_reward_model_training(self, pref_data: Rows | None = None) -> dict[str, Any]:
        """A reward model trained with TRL's RewardTrainer on (prompt, chosen, rejected) rows (by
        default the task's right answers against near misses), started from the SFT model's weights
        (the base model's without `run_sft`) with a one-logit head and saved in `model/reward/`.
        From now on it is the judge of every game."""
        r = self.config.reward_model
        table = self._builtin_preferences(r.pairs) if pref_data is None else as_preferences(pref_data)
        held = int(table.num_rows * r.eval_fraction)
        train, evaluation = table.slice(0, table.num_rows - held), (table.slice(table.num_rows - held) if held else None)
        out = self.run.root / "model" / "reward"
        settings = self._stage(r.steps, r.batch_size, r.learning_rate, r.warmup_steps)
        stats: dict[str, Any] = self._on_learner_resources(
            train_reward_model, str(self.policy_path), train, str(out), settings, evaluation
        )
        judge = self.config.judge.model_copy(update={"kind": "reward_model", "reward_model": out, "options": {}})
        self.config = self.config.model_copy(update={"judge": judge})
        write_text_atomic(self.run.root / "config.yaml", to_yaml(self.config))
        if self._orchestrator is not None:
            self._orchestrator.config = self.config
            self._orchestrator.start_judge(judge)
        stats["path"] = str(out)
        self._log("reward_model", stats, rows=train.num_rows)
        return stats

    def run_self_play(self, n_games: int | None = None, refinement_iterations: int = 0) -> pa.Table:
        """One round: `n_games` head-to-head games (`self_play.games_per_iteration` by default)
        of the current policy against matchmade snapshots, and, with `refinement_iterations` > 0,
        that many critique-and-refine steps on as many prompts. Games, traces and pairs are
        written to the run directory; the preference pairs are returned (PAIR_SCHEMA columns)."""
        if n_games is not None and n_games < 1:
            raise PipelineError(f"n_games must be at least 1, got {n_games}")
        if refinement_iterations < 0:
            raise PipelineError(f"refinement_iterations must be 0 or more, got {refinement_iterations}")
        orch = self.orchestrator
        self.round += 1
        games = registry()
        played = [games["head_to_head"].play(orch.context(), orch.main_agent(), self.round, n_games)]
        if refinement_iterations:
            steps = self.config.refinement.model_copy(update={"rounds": refinement_iterations})
            context = replace(orch.context(), config=self.config.model_copy(update={"refinement": steps}))
            played.append(games["refinement"].play(context, orch.main_agent(), self.round, n_games))
        fields = {k: v for p in played for k, v in p.fields.items()}
        tables = [p.pairs for p in played]
        self._last_pairs = pa.concat_tables(ray.get(tables))
        self._last_fields = fields
        return self._last_pairs

    def run_policy_optimization(self, method: str = "dpo", data: Rows | None = None) -> dict[str, Any]:
        """Train the policy on preference pairs (the last self-play round's by default) and serve
        the new weights; returns the iteration's metrics row (also appended to `metrics.jsonl`)."""
        if method not in METHODS:
            raise PipelineError(f"unknown policy-optimization method {method!r}; supported: {', '.join(METHODS)}")
        if data is None and self._last_pairs is None:
            raise PipelineError("no preference data: call run_self_play first, or pass data=(a table, rows or a file)")
        if data is None:
            pairs = self._last_pairs
        elif isinstance(data, pa.Table) and data.num_rows == 0 and {"prompt", "chosen", "rejected"} <= set(data.column_names):
            pairs = data  # a round whose games were all ties: nothing to learn, the version stays
        else:
            pairs = as_preferences(data)
        orch = self.orchestrator
        if self._last_pairs is None:
            self.round += 1  # optimization on data of your own, outside a self-play round: a round of its own
        row = orch.learn(self.round, self._last_fields, pairs)
        self.run.append_metrics(row)
        self._last_pairs, self._last_fields = None, {}
        if self.show_progress:
            print(format_row(row))
        return row

    def evaluate(self) -> float:
        """The task's held-out metric (greedy answers) of the policy the generator serves now."""
        return self.orchestrator.evaluate()["accuracy"]

    # ----------------------------------------------------------------- helpers
    @property
    def orchestrator(self) -> Orchestrator:
        """The actors, started on first use from the policy the stages so far produced."""
        if self._orchestrator is None:
            orch = Orchestrator(self.config, self.run, show_progress=self.show_progress)
            self._orchestrator = orch
            orch.start(base=self.policy_path, warm_up=False)
            self.run.append_metrics(orch.initial_row())
        return self._orchestrator

    def _builtin_preferences(self, n: int) -> pa.Table:
        if not isinstance(self.task, AdditionTask):
            raise PipelineError(
                f"built-in preference pairs (a right answer and a near miss) exist for the addition task only; pass "
                f"data= (rows with prompt, chosen, rejected) to train a reward model for task kind {self.task.name!r}"
            )
        problems = self.task.train(n, self.rng)
        return pa.table({
            "prompt": [p.text for p in problems],  # what the reward-model judge reads
            "chosen": [p.answer for p in problems],
            "rejected": [wrong_answer(p, self.rng) for p in problems],
        })

    def _stage(self, steps: int, batch_size: int, learning_rate: float, warmup_steps: int) -> StageSettings:
        return StageSettings(
            steps=max(steps, 1), batch_size=batch_size, learning_rate=learning_rate, warmup_steps=warmup_steps,
            max_length=context_length(self.config.model, self.policy_path), seed=self.config.seed, show_progress=self.show_progress,
        )

    def _on_learner_resources(self, fn: Any, *args: Any) -> Any:
        """Run a TRL stage as a Ray task with the learner's GPUs, so on a cluster it lands on a GPU node."""
        task = ray.remote(fn).options(num_cpus=0, num_gpus=self.config.cluster.num_learner_gpus)
        return ray.get(task.remote(*args))

    def _log(self, stage: str, stats: dict[str, Any], rows: int) -> None:
        """Each stage's figures in `stages.jsonl`, beside the per-iteration metrics."""
        with open(self.run.root / "stages.jsonl", "a") as f:
            f.write(json.dumps({"stage": stage, "rows": rows, **stats}) + "\n")
        if self.show_progress:
            print(f"{stage}: " + "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in stats.items()))
