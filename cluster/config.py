"""The one typed, validated configuration of a run.

Every option lives here, with its default and its bounds, so a recipe is checked once,
before anything is written: an unknown key or a bad value stops the run with a message
that names the key and says what is allowed.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, Discriminator, Field, Tag, ValidationError, create_model, model_validator

from cluster.section import RecipeSection
from games.base import registry
from judge.pairwise import DEFAULT_PATTERN, DEFAULT_TEMPLATE
from learner.lora import LoRAOptions
from tasks.base import kinds
from trackers.base import SINKS, WandbMode


class ConfigError(ValueError):
    """A recipe that cannot run; the message names the key and what is allowed."""


class _Section(RecipeSection):
    """A section of the recipe (see tasks.base.RecipeSection: the rules every section follows)."""


def _task_kind(value: Any) -> str:
    """The task kind of a recipe's task section (addition when it names none)."""
    if isinstance(value, dict):
        return value.get("kind", "addition")
    return getattr(value, "kind", "addition")


# Every game in games/ (each file registers itself); `self_play.modes` picks them.
GAMES = registry()
# Every task kind in tasks/ (each file registers its options model); `task.kind` picks one.
TASK_KINDS = kinds()
TaskConfig = Annotated[
    Union[tuple(Annotated[options, Tag(name)] for name, options in TASK_KINDS.items())],  # type: ignore[misc]  # noqa: UP007 (a union built at run time)
    Discriminator(_task_kind, custom_error_type="task_kind",
                  custom_error_message=f"unknown task kind; known kinds: {', '.join(sorted(TASK_KINDS))}"),
]


# vLLM 0.32's CPU attention backend (CPUAttentionBackend.get_supported_head_sizes).
CPU_ATTENTION_HEAD_SIZES = frozenset({32, 64, 80, 96, 112, 128, 160, 192, 224, 256, 512})


class TinyModelConfig(_Section):
    """Shape of the Llama-style model built from scratch when no `model.path` is given."""

    hidden_size: int = Field(128, ge=16)
    num_layers: int = Field(4, ge=1)
    num_heads: int = Field(4, ge=1)
    intermediate_size: int = Field(512, ge=16)

    @model_validator(mode="after")
    def _head_size_is_servable(self) -> TinyModelConfig:
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size ({self.hidden_size}) must be a multiple of num_heads ({self.num_heads})")
        head = self.hidden_size // self.num_heads
        if head not in CPU_ATTENTION_HEAD_SIZES:
            raise ValueError(
                f"hidden_size / num_heads = {head}, a head size vLLM's CPU attention cannot serve; "
                f"choose num_heads so it is one of {sorted(CPU_ATTENTION_HEAD_SIZES)}"
            )
        return self


class ModelConfig(_Section):
    path: Path | None = Field(
        None, description="a Hugging Face checkpoint directory, or a built-in model's name (smollm2-135m-instruct, converted "
        "once into the cache); leave out to build the tiny model",
    )
    chat_template: str = Field("auto", description="auto (the tokenizer's when it has one), none (raw text), or a Jinja file")
    system_prompt: str | None = Field(None, description="a system turn before every prompt")
    tiny: TinyModelConfig = TinyModelConfig()
    dtype: Literal["float32", "bfloat16"] = "float32"
    max_model_len: int | None = Field(
        None, ge=8, description="tokens of prompt plus answer the generators and the TRL stages take; default: the model's own "
        "(max_position_embeddings; 64 for the tiny model)",
    )

    @model_validator(mode="after")
    def _path_exists(self) -> ModelConfig:
        from learner.checkpoint import read_checkpoint_config
        from learner.pretrained import BUILTIN_MODELS, is_builtin

        update: dict[str, Any] = {}
        if self.chat_template not in ("auto", "none"):
            if not Path(self.chat_template).is_file():
                raise ValueError(f"model.chat_template {self.chat_template!r} is not auto, none or a template file")
            update["chat_template"] = str(Path(self.chat_template).resolve())
        if self.path is not None and is_builtin(self.path):
            _check_builtin(self.path)
        if self.path is not None and not is_builtin(self.path):
            if not (self.path / "config.json").is_file():
                raise ValueError(
                    f"model.path {str(self.path)!r} is not a Hugging Face checkpoint directory (no config.json there) nor a "
                    f"built-in model ({', '.join(sorted(BUILTIN_MODELS))}); give a directory written by save_pretrained, "
                    "or leave model.path out to build the tiny built-in model"
                )
            update["path"] = self.path.resolve()
            self._check_context(read_checkpoint_config(self.path))
        return self.model_copy(update=update) if update else self

    def _check_context(self, checkpoint: dict[str, Any]) -> None:
        """A context longer than the checkpoint's positions would make every engine start fail."""
        positions = checkpoint.get("max_position_embeddings")
        if self.max_model_len is not None and isinstance(positions, int) and self.max_model_len > positions:
            raise ValueError(
                f"model.max_model_len {self.max_model_len} is more than the checkpoint's {positions} positions "
                f"(max_position_embeddings in {str(self.path)!r}); set it to at most {positions}, or leave it out"
            )


def _check_builtin(name: Path) -> None:
    """A built-in model not converted yet needs the package it comes from."""
    from learner.pretrained import PretrainedModelError, cache_dir, gguf_file

    if (cache_dir() / str(name) / "config.json").is_file():
        return
    try:
        gguf_file(str(name))
    except PretrainedModelError as err:
        raise ValueError(str(err)) from None


class SFTConfig(_Section):
    """The warm-up before self-play: at most `steps` steps, ending early once the policy's
    task metric on a validation sample of training problems reaches `stop_at_accuracy`
    (so self-play starts from a comparable point whatever the seed); steps=0 skips it."""

    steps: int = Field(2000, ge=0)
    batch_size: int = Field(64, ge=1)
    learning_rate: float = Field(3e-3, gt=0)
    warmup_steps: int = Field(100, ge=1, description="linear learning-rate warm-up")
    stop_at_accuracy: float | None = Field(0.3, gt=0, le=1)
    validation_size: int = Field(256, ge=8)
    retention_share: float = Field(0.25, ge=0, lt=1, description="share of each batch from built-in retention tasks")


class RewardModelConfig(_Section):
    """The reward-model stage of the staged pipeline (`RLHFPipeline.run_reward_model_training`,
    TRL's RewardTrainer); with no preference data given it trains on `pairs` built-in pairs of a
    right and a near-miss answer, holding out `eval_fraction` of them to measure its accuracy."""

    steps: int = Field(200, ge=1)
    batch_size: int = Field(32, ge=1)
    learning_rate: float = Field(1e-3, gt=0)
    warmup_steps: int = Field(10, ge=0)
    pairs: int = Field(2000, ge=2)
    eval_fraction: float = Field(0.1, ge=0, lt=1)


class GeneratorConfig(_Section):
    temperature: float = Field(1.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    max_new_tokens: int = Field(8, ge=1)
    stop: list[str] = Field(default_factory=list, description="strings that end an answer (the model's EOS always does)")
    kv_cache_bytes: int = Field(64 * 2**20, ge=2**20, description="fixed KV-cache size per engine (CPU backend)")
    num_cpus: float = Field(0, ge=0, description="Ray CPUs reserved per generator actor")
    num_gpus: float = Field(0, ge=0)
    resources: dict[str, float] = Field(default_factory=dict, description="Ray custom resources per generator actor (which nodes they go to)")
    replicas: int = Field(1, ge=1, description="generators serving the current policy (selfplay scale changes it live)")
    snapshot_replicas: int = Field(
        1, ge=0, description="generators serving the league's snapshots; 0: the current policy's generators answer for them "
        "too, loading a snapshot's checkpoint for its answers and their own weights back after (one engine fewer)",
    )
    retries: int = Field(2, ge=0, description="times a shard of a dead generator is sent to another")
    sync_timeout_s: float = Field(300.0, gt=0, description="a weight sync not done in this time fails the run loudly")
    start_timeout_s: float = Field(600.0, gt=0, description="a new generator not serving within this time fails the run loudly")
    weight_transfer: Literal["auto", "object_store", "nccl", "gloo"] = Field(
        "auto",
        description="how the learner's weights reach the generators: object_store (Ray's), or vLLM's weight-transfer "
        "engine over nccl (GPUs) or gloo (CPU, TCP); auto is nccl when the learner and each generator have whole GPUs",
    )
    tensor_parallel_size: int = Field(
        1, ge=1, description="GPUs each generator shards its model over, reserved as a placement group of one-GPU bundles"
    )

    @property
    def gpu_memory_utilization(self) -> float:
        """vLLM's share of a GPU's memory per generator: 0.9, or 0.9 of the generator's share of one
        GPU (vLLM refuses to start unless that much is free, and a learner may hold the rest)."""
        return 0.9 * self.num_gpus if 0 < self.num_gpus < 1 else 0.9


class PrincipleConfig(_Section):
    """One principle of a constitution: adherence from a registered rule (judge/constitution.py),
    or from an auxiliary classifier checkpoint (`model`, with `label` the index that means adherence)."""

    name: str
    rule: str | None = None
    model: Path | None = None
    label: int | None = None
    weight: float = 1.0
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _rule_exists(self) -> PrincipleConfig:
        from judge.constitution import check_principle

        check_principle(self.name, self.rule, self.options, self.model, self.label)
        return self if self.model is None else self.model_copy(update={"model": self.model.resolve()})


class JudgeConfig(_Section):
    kind: str = Field(
        "exact_answer", description="a rule verifier (exact_answer, normalized_match, numeric, regex, math), code, task (the "
        "task's own metric), reward_model or pairwise_llm",
    )
    options: dict[str, Any] = Field(default_factory=dict, description="the verifier's options, e.g. numeric's tolerance")
    reward_model: Path | None = Field(None, description="a sequence-classification checkpoint with one label (kind reward_model)")
    tie_margin: float = Field(0.0, ge=0, description="reward model: rewards at most this far apart are a tie")
    truncation: Literal["judge", "loses"] = Field(
        "judge", description="head-to-head games: judge: an answer cut off at generator.max_new_tokens is judged like any "
        "other; loses: it loses to one that ended (two cut off tie)",
    )
    num_gpus: float = Field(0, ge=0, description="GPUs for the judge actor (a reward model or principle classifiers)")
    llm: Path | None = Field(
        None, description="pairwise_llm: the judge model's checkpoint (or a built-in model's name), served by its own vLLM "
        "generator actor",
    )
    template: str = Field(DEFAULT_TEMPLATE, description="pairwise_llm: the question, over {prompt}, {a} and {b}")
    verdict_pattern: str = Field(DEFAULT_PATTERN, description="pairwise_llm: a regex whose one group captures A, B or C (tie)")
    llm_max_new_tokens: int = Field(16, ge=1)
    llm_max_model_len: int = Field(512, ge=16)
    actors: int = Field(1, ge=1, description="judge actors in the pool; batches are spread across them")
    batch_size: int = Field(256, ge=1, description="matchups per judge call")
    timeout_s: float = Field(120.0, gt=0, description="a judge call past this is abandoned, its judge replaced, the batch retried")
    retries: int = Field(1, ge=0, description="further tries of a failed batch on other judges before its games are marked")
    max_error_share: float = Field(
        0.5, ge=0, le=1, description="a judging call (an iteration's games) with more of its games judge errors than this stops "
        "the run with an error instead of recording them as ties",
    )
    constitution: list[PrincipleConfig] = Field(default_factory=list, description="principles added to the base score")

    @model_validator(mode="after")
    def _reward_model_given(self) -> JudgeConfig:
        from judge.base import JudgeError
        from judge.code import CodeJudge
        from judge.registry import CODE, MODEL_KINDS, TASK, kinds
        from judge.rules import check_verifier

        if self.kind not in kinds():
            raise ValueError(f"unknown judge kind {self.kind!r}; known kinds: {', '.join(kinds())}")
        if self.kind == CODE:
            try:
                CodeJudge.from_options(self.options)
            except JudgeError as err:
                raise ValueError(str(err)) from None
            return self
        if self.kind == TASK:
            if self.options:
                raise ValueError("judge kind task scores with the task's own metric and takes no options; set them in task:")
            return self
        if self.kind not in MODEL_KINDS:
            check_verifier(self.kind, self.options)
            return self
        if self.options:
            raise ValueError(f"options are for rule verifiers and the code judge, not {self.kind}")
        if self.kind == "pairwise_llm":
            from judge.pairwise import check_template

            check_template(self.template, self.verdict_pattern)
            from learner.pretrained import is_builtin

            if self.llm is not None and is_builtin(self.llm):
                _check_builtin(self.llm)
                return self
            if self.llm is None or not (self.llm / "config.json").is_file():
                raise ValueError(
                    f"judge kind pairwise_llm needs llm: the judge model's checkpoint directory or a built-in model's name "
                    f"(got {self.llm})"
                )
            return self.model_copy(update={"llm": self.llm.resolve()})
        if self.reward_model is None or not (self.reward_model / "config.json").is_file():
            raise ValueError(
                f"judge kind reward_model needs reward_model: a checkpoint directory with config.json (got {self.reward_model}); "
                "train one with RLHFPipeline.run_reward_model_training or TRL's RewardTrainer"
            )
        return self.model_copy(update={"reward_model": self.reward_model.resolve()})


class RolesConfig(_Section):
    """League roles in the AlphaStar manner, used with `league.matchmaking: alphastar` (the rules
    are in league/roles.py): the current policy is the main agent; these exploiters learn beside
    it, each with its own learner and generator. Time is counted in self-play iterations."""

    main_exploiters: int = Field(1, ge=0, description="agents that hunt the main agent's weaknesses; reset after each snapshot")
    league_exploiters: int = Field(1, ge=0, description="agents that hunt the whole league's; reset with probability league_exploiter_reset")
    min_iterations: int = Field(2, ge=1, description="iterations an agent plays before a new snapshot of it may join")
    max_iterations: int = Field(8, ge=1, description="iterations after which a new snapshot joins whatever its win rates")
    snapshot_win_rate: float = Field(0.7, gt=0, lt=1, description="win rate over every rival that earns a snapshot sooner")
    league_exploiter_reset: float = Field(0.25, ge=0, le=1, description="chance a league exploiter starts over after a snapshot")
    games_per_iteration: int | None = Field(
        None, ge=1, description="each exploiter's games (head-to-head) or seeds (multi_turn) per iteration; default the main agent's"
    )

    @model_validator(mode="after")
    def _ordered(self) -> RolesConfig:
        if self.max_iterations < self.min_iterations:
            raise ValueError(f"max_iterations ({self.max_iterations}) is below min_iterations ({self.min_iterations})")
        return self

    def exploiters(self) -> dict[str, Literal["main_exploiter", "league_exploiter"]]:
        """The exploiters' names and roles: the role's name, numbered from 2 when there are several."""
        named: dict[str, Literal["main_exploiter", "league_exploiter"]] = {}
        for role, count in (("main_exploiter", self.main_exploiters), ("league_exploiter", self.league_exploiters)):
            for k in range(count):
                named[role if k == 0 else f"{role}{k + 1}"] = role  # type: ignore[assignment]
        return named


class LeagueConfig(_Section):
    initial_elo: float = 1000.0
    elo_scale: float = Field(400.0, gt=0)
    k_factor: float = Field(4.0, gt=0)
    matchmaking: Literal["previous", "uniform", "pfsp", "near_skill", "alphastar"] = Field(
        "previous", description="alphastar: league roles (league.roles)"
    )
    pfsp_weighting: Literal["squared", "variance", "linear", "linear_capped"] = "squared"
    near_skill_width: float = Field(100.0, gt=0, description="Elo gap weighted exp(-1/2) by near_skill")
    admission_threshold: float = Field(0.6, gt=0, le=1)
    min_admission_games: int = Field(32, ge=1)
    max_snapshots: int | None = Field(None, ge=2, description="population cap; the lowest-rated snapshot beyond it retires")
    payoff_decay: float = Field(1.0, gt=0, le=1, description="per-round discount of earlier results in PFSP's win rates")
    roles: RolesConfig = RolesConfig()


# DPO's loss terms by TRL's names (learner/dpo.py computes each; a test holds this list to its table)
DPOLossType = Literal["sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "apo_zero", "apo_down", "sft"]


class DPOConfig(_Section):
    """DPO against a frozen reference: the terms of `loss_type` (TRL's names, learner/dpo.py) with
    `loss_weights`, plus an NLL term on chosen (RPO; TRL's `sft`) when nll_weight > 0."""

    beta: float = Field(0.1, gt=0)
    learning_rate: float = Field(2e-4, gt=0)
    nll_weight: float = Field(1.0, ge=0, description="weight of the sft term (NLL on chosen); 0: none")
    loss_type: list[DPOLossType] = Field(["sigmoid"], min_length=1, description="DPO's loss terms, as TRL's DPOConfig.loss_type")
    loss_weights: list[float] | None = Field(None, description="one weight per loss_type; default 1 each")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="the robust (< 0.5) and exo_pair (> 0) terms' label noise")
    batch_size: int = Field(64, ge=1)
    epochs: int = Field(2, ge=1)
    max_grad_norm: float = Field(1.0, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    ref_refresh_every: int = Field(3, ge=0, description="refresh the reference every N iterations; 0 never")
    micro_batch_tokens: int | None = Field(
        None, ge=16, description="padded tokens per forward pass, gradients accumulated over them; none: the whole batch"
    )
    gradient_checkpointing: bool = Field(False, description="recompute activations in the backward pass (less memory)")
    baseline_decay: float = Field(
        0.95, ge=0, lt=1, description="REINFORCE (multi_turn.objective: reinforce): decay of the reward baseline per game and seat"
    )
    kl_weight: float = Field(0.0, ge=0, description="REINFORCE: weight of the KL to the reference (k3 estimate, per action token)")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="forward passes under bf16 autocast (weights and optimizer stay fp32); auto: bf16 on a GPU "
        "that has it, fp32 elsewhere",
    )

    @model_validator(mode="after")
    def _terms(self) -> DPOConfig:
        if self.loss_weights is not None and len(self.loss_weights) != len(self.loss_type):
            raise ValueError(f"loss_weights has {len(self.loss_weights)} weights for {len(self.loss_type)} loss types; give one each")
        if any(w < 0 for w in self.loss_weights or []):
            raise ValueError(f"loss_weights {self.loss_weights} has a negative weight, which would reverse its term; give weights >= 0")
        if "sft" in self.loss_type and self.nll_weight:
            raise ValueError("the sft term is given twice, in loss_type and as nll_weight; set nll_weight: 0 or drop sft")
        if "exo_pair" in self.loss_type and not 0 < self.label_smoothing < 1:
            raise ValueError("loss type exo_pair needs label_smoothing in (0, 1) (TRL suggests 1e-3)")
        if "robust" in self.loss_type and self.label_smoothing >= 0.5:
            raise ValueError(f"loss type robust needs label_smoothing below 0.5 (got {self.label_smoothing})")
        return self


class LearnerConfig(_Section):
    """How the learner holds the policy."""

    lora: LoRAOptions | None = Field(None, description="low-rank adapters (peft): only they train; the reference is the base")
    ranks: int = Field(1, ge=1, description="learner processes holding the policy in FSDP2 shards (each with cluster.num_learner_gpus)")

    @model_validator(mode="after")
    def _one_kind(self) -> LearnerConfig:
        if self.ranks > 1 and self.lora is not None:
            raise ValueError("a sharded learner group (learner.ranks > 1) does not take learner.lora yet: set one of them")
        return self


class DataConfig(_Section):
    """Real preference data mixed into every DPO update."""

    preferences: Path | None = Field(None, description="Parquet or JSONL with prompt, chosen, rejected")
    preference_ratio: float = Field(0.5, ge=0, description="external pairs per self-play pair")

    @model_validator(mode="after")
    def _file_exists(self) -> DataConfig:
        if self.preferences is None:
            return self
        if not self.preferences.is_file():
            raise ValueError(f"data.preferences {str(self.preferences)!r} is not a file; give a .parquet or .jsonl path")
        from learner.mixing import PreferenceDataError, load_preferences

        try:
            load_preferences(self.preferences)
        except PreferenceDataError as err:
            raise ValueError(str(err)) from None
        return self.model_copy(update={"preferences": self.preferences.resolve()})


class SelfPlayConfig(_Section):
    iterations: int = Field(36, ge=1)
    games_per_iteration: int = Field(1024, ge=1)
    max_seconds: float | None = Field(None, gt=0, description="stop after the iteration that passes this much self-play time")
    save_every: int = Field(1, ge=0, description="write the resumable state/ every N iterations (and at the end); 0 never")
    modes: list[str] = Field(["head_to_head"], min_length=1, description="the games each iteration plays (games/), in this order")
    max_staleness: int = Field(0, ge=0, description="the asynchronous pipeline (cluster/overlap.py): the learner trains this many "
                               "rounds behind play, on games at most this many versions older than its policy; 0 is synchronous")

    @model_validator(mode="after")
    def _games_exist(self) -> SelfPlayConfig:
        known = registry()
        unknown = [m for m in self.modes if m not in known]
        if unknown:
            raise ValueError(f"unknown game {unknown[0]!r} in modes; known games: {', '.join(sorted(known))} (one file each in games/)")
        return self


class RetentionConfig(_Section):
    """A held-out task the run does not train on in self-play, scored every iteration (greedy,
    by `metric`) against the starting policy: does self-play cost the policy what it knew?

    `digits`: the built-in addition with operands of this many digits; its training problems
    join the SFT warm-up (`sft.retention_share` of each batch) and self-play never sees them.
    `path`: a Parquet or JSONL file with `prompt` and `answer` columns (a benchmark the
    starting model already knows)."""

    name: str
    digits: int | None = Field(None, ge=1, le=6)
    path: Path | None = None
    size: int = Field(128, ge=1, description="problems scored (from the file: its first this many)")
    metric: str = Field("exact_answer", description="the verifier scoring a file's answers (numeric, math, ...)")

    @model_validator(mode="after")
    def _one_source(self) -> RetentionConfig:
        from judge.rules import check_verifier

        if (self.digits is None) == (self.path is None):
            raise ValueError(f"retention task {self.name!r}: give exactly one of digits (built-in addition) or path (a file)")
        check_verifier(self.metric, {})
        if self.path is None:
            return self
        from learner.mixing import PreferenceDataError, load_text_columns

        try:
            load_text_columns(self.path, ("prompt", "answer"), f"retention task {self.name!r}")
        except PreferenceDataError as err:
            raise ValueError(str(err)) from None
        return self.model_copy(update={"path": self.path.resolve()})


class RoundRobinConfig(_Section):
    """Evaluation games between every two of the league's snapshots and the current policy."""

    every: int = Field(5, ge=1, description="play one every this many iterations")
    games: int = Field(8, ge=1, description="games per pair of players, on held-out prompts; never trained on")


class EvalConfig(_Section):
    """What is measured every iteration besides held-out accuracy."""

    retention: list[RetentionConfig] = Field(default_factory=list, description="capability-retention tasks")
    round_robin: RoundRobinConfig | None = Field(None, description="anchor the ratings: snapshots also play each other")

    diversity_prompts: int = Field(16, ge=1, description="fixed held-out prompts sampled for diversity")
    diversity_samples: int = Field(8, ge=2, description="samples per diversity prompt")
    min_distinct_2: float = Field(0.05, ge=0, le=1, description="warn of mode collapse below this distinct-2")
    bootstrap_samples: int = Field(100, ge=10, description="bootstrap draws for Bradley-Terry intervals")


class LoggingConfig(_Section):
    """Experiment trackers the driver sends the run to (trackers/): each final metrics row, the
    recipe, and the report's figures at the end."""

    sinks: list[str] = Field(default_factory=list, description=f"any of {', '.join(SINKS)} (the `trackers` extra)")
    project: str = Field("selfplay", min_length=1, description="the wandb project and the MLflow experiment")
    wandb_mode: WandbMode | None = Field(None, description="left out: wandb's own choice (WANDB_MODE, login)")
    mlflow_uri: str | None = Field(None, description="MLflow's tracking server; default MLFLOW_TRACKING_URI, else a file store in RUN_DIR/mlruns")

    @model_validator(mode="after")
    def _known(self) -> LoggingConfig:
        unknown = [name for name in self.sinks if name not in SINKS]
        if unknown:
            raise ValueError(f"unknown sink {unknown[0]!r}; known sinks: {', '.join(SINKS)}")
        if len(set(self.sinks)) < len(self.sinks):
            raise ValueError(f"a sink is named twice in {self.sinks}")
        return self  # whether their packages are installed is asked where the run's driver is (trackers.base.Trackers.open)


class AutoscaleConfig(_Section):
    """The current policy's generator count following the queue depth (see cluster/control.py)."""

    enabled: bool = False
    min_generators: int = Field(1, ge=1)
    max_generators: int = Field(8, ge=1)
    prompts_per_generator: int = Field(2048, ge=1, description="prompts per iteration one generator is meant to take")

    @model_validator(mode="after")
    def _ordered(self) -> AutoscaleConfig:
        if self.max_generators < self.min_generators:
            raise ValueError(f"max_generators ({self.max_generators}) is below min_generators ({self.min_generators})")
        return self


class ClusterConfig(_Section):
    address: str | None = Field(None, description="Ray address to join; leave out to start a local cluster")
    num_cpus: int | None = Field(None, ge=1, description="logical CPUs of the local cluster; default max(4, cores)")
    dashboard: bool = False
    actor_logs: bool = Field(False, description="forward the actors' logs (vLLM's included) to the terminal")
    num_learner_gpus: float = Field(0, ge=0)
    autoscale: AutoscaleConfig = AutoscaleConfig()


class _RunConfig(_Section):
    """The recipe's sections but the games' own: `RunConfig` below adds one per game that has options."""

    run_dir: Path | None = Field(None, description="where the run writes; default runs/run-<date>-<time>")
    seed: int = 0
    task: TaskConfig = Field(default_factory=lambda: TASK_KINDS["addition"]())
    model: ModelConfig = ModelConfig()
    sft: SFTConfig = SFTConfig()
    generator: GeneratorConfig = GeneratorConfig()
    reward_model: RewardModelConfig = RewardModelConfig()
    judge: JudgeConfig = JudgeConfig()
    league: LeagueConfig = LeagueConfig()
    dpo: DPOConfig = DPOConfig()
    learner: LearnerConfig = LearnerConfig()
    self_play: SelfPlayConfig = SelfPlayConfig()
    data: DataConfig = DataConfig()
    eval: EvalConfig = EvalConfig()
    logging: LoggingConfig = LoggingConfig()
    cluster: ClusterConfig = ClusterConfig()

    @model_validator(mode="before")
    @classmethod
    def _legacy_task_name(cls, data: Any) -> Any:
        """Runs written before task kinds existed say `task.name: addition`; they resume as they were."""
        task = data.get("task") if isinstance(data, dict) else None
        if isinstance(task, dict) and task.get("name") == "addition" and "kind" not in task:
            data = {**data, "task": {k: v for k, v in task.items() if k != "name"}}
        return data

    @model_validator(mode="after")
    def _lora_weights_by_object_store(self) -> RunConfig:
        if self.learner.lora is not None and self.transfer_backend is not None:
            raise ValueError(
                f"learner.lora sends its updates (merged weights or adapters) through Ray's object store, not vLLM's {self.transfer_backend} transfer "
                "engine yet: set generator.weight_transfer: object_store"
            )
        if self.learner.lora is not None and "skill" in self.self_play.modes:
            raise ValueError("skill play adds tokens, whose new embedding rows LoRA's adapters do not train: leave learner.lora unset")
        if self.learner.ranks > 1 and self.transfer_backend is not None:
            raise ValueError(f"a learner group (learner.ranks > 1) publishes its gathered weights through Ray's object store, not vLLM's "
                             f"{self.transfer_backend} transfer engine yet: set generator.weight_transfer: object_store")
        if self.eval.round_robin is not None and "head_to_head" not in self.self_play.modes:
            raise ValueError("eval.round_robin plays head-to-head games on the task's held-out prompts: it needs head_to_head in self_play.modes")
        if self.learner.ranks > 1 and "skill" in self.self_play.modes:
            raise ValueError("skill play adds tokens, which a sharded learner group cannot grow its embeddings for: set learner.ranks: 1")
        return self

    @model_validator(mode="after")
    def _snapshots_served(self) -> RunConfig:
        """Snapshots answered by the current policy's engines (`snapshot_replicas: 0`) need those
        engines to hold their own weights where they can load them back from."""
        if self.generator.snapshot_replicas:
            return self
        if self.transfer_backend is not None:
            raise ValueError(f"generator.snapshot_replicas: 0 has the current policy's engines load each snapshot and then their own weights "
                             f"back, which they cannot keep when they take them over vLLM's {self.transfer_backend} transfer engine: "
                             "set generator.weight_transfer: object_store, or snapshot_replicas >= 1")
        lora = self.learner.lora
        if lora is not None and lora.snapshots == "adapters" and lora.broadcast != "adapter":
            raise ValueError("learner.lora.snapshots: adapters serves the league as adapters on v0, which the current policy's engines hold "
                             "only when they take the policy as an adapter too: set learner.lora.broadcast: adapter (one engine serves "
                             "every version), generator.snapshot_replicas >= 1, or learner.lora.snapshots: merged")
        return self

    @model_validator(mode="after")
    def _retention_is_held_out(self) -> RunConfig:
        names = [r.name for r in self.eval.retention]
        if len(set(names)) != len(names):
            raise ValueError(f"eval.retention names {names} repeat; each retention task needs its own name")
        from judge.rules import VERIFIERS

        if self.judge.kind in VERIFIERS and not self.task.has_references:
            raise ValueError(
                f"judge kind {self.judge.kind} checks answers against reference answers, and task kind {self.task.kind!r} "
                "gives none here: set task.columns.reference, or judge open-ended prompts with reward_model or pairwise_llm"
            )
        if self.sft.steps and not self.task.has_references:
            raise ValueError(
                f"sft.steps is {self.sft.steps}, but task kind {self.task.kind!r} gives no reference answers to warm up on: "
                "set sft.steps: 0 or give task.columns.reference"
            )
        if self.judge.kind == "code" and not self.task.has_tests:
            raise ValueError(
                f"judge kind code runs each example's unit tests, and task kind {self.task.kind!r} gives none: use task kind "
                "dataset with columns.tests (a column of assert statements)"
            )
        matchmade = [mode for mode in self.self_play.modes if registry()[mode].matchmade]
        if self.league.matchmaking == "alphastar" and not matchmade:
            raise ValueError(
                "league.matchmaking alphastar matches the agents in games against opponents; add head_to_head "
                "(or multi_turn, for a game task) to self_play.modes"
            )
        for mode in self.self_play.modes:
            registry()[mode].check(self)
        if self.judge.kind == "pairwise_llm" and "adversarial" in self.self_play.modes:
            raise ValueError("adversarial filtering scores single answers; a pairwise_llm judge only compares two")
        _check_gpu_path(self.generator, self.cluster)
        for r in self.eval.retention:
            if r.digits is not None and self.task.kind != "addition":
                raise ValueError(
                    f"eval.retention {r.name!r} gives digits: built-in addition taught beside an addition task; with task "
                    f"kind {self.task.kind!r} give path (a Parquet or JSONL file with prompt and answer) instead"
                )
            if r.digits is not None and r.digits == self.task.digits:
                raise ValueError(
                    f"eval.retention {r.name!r} has digits {r.digits}, the task self-play trains on; "
                    "a retention task must be one the run does not train on"
                )
        task = self.task.with_judge(self.judge.kind, dict(self.judge.options))
        return self if task is self.task else self.model_copy(update={"task": task})

    @property
    def transfer_backend(self) -> str | None:
        """The weight-transfer backend of the learning agents' generators (None: the object store)."""
        choice = self.generator.weight_transfer
        if choice == "auto":  # LoRA's merged weights and a learner group's gathered ones go by the object store
            whole = _whole_gpus(self.generator, self.cluster) and self.learner.lora is None and self.learner.ranks == 1
            return "nccl" if whole else None
        return None if choice == "object_store" else choice


# The recipe as a whole: the sections above, and each game's own under its name (games/<name>.py).
RunConfig = create_model(
    "RunConfig", __base__=_RunConfig, __module__=__name__, __doc__="A whole recipe, validated.",
    **{name: (game.options, Field(default_factory=game.options)) for name, game in GAMES.items() if game.options is not None},
)


def _whole_gpus(g: GeneratorConfig, cluster: ClusterConfig) -> bool:
    """Whether the learner and each generator have GPUs of their own, as NCCL needs (one rank per GPU)."""
    return g.num_gpus >= 1 and cluster.num_learner_gpus >= 1


def _check_gpu_path(g: GeneratorConfig, cluster: ClusterConfig) -> None:
    if g.weight_transfer == "nccl" and not _whole_gpus(g, cluster):
        raise ValueError(
            "generator.weight_transfer nccl broadcasts from the learner's GPU to the generators' GPUs, and NCCL cannot "
            "put two ranks on one GPU: set cluster.num_learner_gpus and generator.num_gpus to 1 (whole GPUs), or use "
            "object_store (a shared GPU) or gloo (CPU)"
        )
    if g.tensor_parallel_size > 1 and g.num_gpus != 1:
        raise ValueError(
            f"generator.tensor_parallel_size {g.tensor_parallel_size} shards each generator over that many GPUs, one "
            "per rank: set generator.num_gpus to 1 (vLLM's CPU backend has no tensor parallelism across Ray workers)"
        )
    if g.tensor_parallel_size > 1 and g.weight_transfer == "gloo":
        raise ValueError(
            "generator.weight_transfer gloo is the transfer's CPU path, registered in the generator's own process; "
            "vLLM's tensor-parallel workers are processes of their own: use nccl (or auto) with tensor_parallel_size > 1"
        )


RECIPES = Path(__file__).parent / "recipes"
DEFAULT_RECIPE = RECIPES / "default.yaml"


def parse_config(data: dict[str, Any], source: str = "recipe") -> RunConfig:
    """Validate a nested mapping; every problem is reported with its dotted key."""
    try:
        return RunConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_explain(err, source)) from None


def load_recipe(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Read a YAML recipe (the built-in default when `path` is None) and apply dotted overrides."""
    path = Path(path) if path is not None else DEFAULT_RECIPE
    if path.is_dir():
        raise ConfigError(f"recipe {str(path)!r} is a directory; pass the path of a YAML recipe file inside it")
    if not path.is_file():
        raise ConfigError(f"recipe {str(path)!r} does not exist; pass the path of a YAML recipe or none for the default")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError:
        raise ConfigError(f"recipe {str(path)!r} is not a text file (not UTF-8); pass a YAML recipe") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"recipe {str(path)!r} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"recipe {str(path)!r} must be a mapping of sections (task:, model:, ...), not {type(data).__name__}")
    for dotted, value in (overrides or {}).items():
        _set_dotted(data, dotted, value)
    return parse_config(data, source=str(path))


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = data
    for key in parents:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted!r}: {key!r} is not a section")
    node[leaf] = value


def _explain(err: ValidationError, source: str) -> str:
    """Each problem as `key: what is wrong`; a single one on one line."""
    problems = []
    for item in err.errors():
        loc = _without_tags(item["loc"])
        key = ".".join(str(p) for p in loc) or "(top level)"
        if item["type"] == "extra_forbidden":
            section = _section_at(item["loc"][:-1])
            allowed = ", ".join(sorted(section.model_fields)) if section else "?"
            problems.append(f"{key}: unknown key; allowed here: {allowed}")
        else:
            shown = "" if isinstance(item.get("input"), (dict, BaseModel)) else f" (got {item.get('input')!r})"  # a section: the message says
            key, msg = _narrowed(item["loc"], key, item["msg"].removeprefix("Value error, "))
            problems.append(f"{msg}{shown}" if not loc else f"{key}: {msg}{shown}")  # a rule across sections names its keys
    if len(problems) == 1:
        return f"{source}: {problems[0]}"
    return "\n".join([f"{source}: {len(problems)} problems in the configuration:", *(f"  {p}" for p in problems)])


def _narrowed(loc: tuple[Any, ...], key: str, msg: str) -> tuple[str, str]:
    """A section's check that names one of its keys first (`iterations: ...`) is shown under that key."""
    name, sep, rest = msg.partition(": ")
    section = _section_at(loc)
    if sep and section is not None and name in section.model_fields:
        return f"{key}.{name}", rest
    return key, msg


def _without_tags(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """A location without the union tag pydantic puts after `task` (task.addition.digits is task.digits)."""
    if len(loc) > 1 and loc[0] == "task" and loc[1] in TASK_KINDS:
        return loc[:1] + loc[2:]
    return loc


def _section_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] = RunConfig
    parts = list(loc)
    while parts:
        part = parts.pop(0)
        if isinstance(part, int):
            continue  # an index into a list of sections
        if model is RunConfig and part == "task":
            model = TASK_KINDS[parts.pop(0)] if parts else TASK_KINDS["addition"]
            continue
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        if get_origin(annotation) is list:
            annotation = get_args(annotation)[0]
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def with_run_dir(config: RunConfig) -> RunConfig:
    """The config with its run directory made concrete (a fresh timestamped one when none is set)."""
    if config.run_dir is not None:
        return config
    return config.model_copy(update={"run_dir": Path("runs") / time.strftime("run-%Y%m%d-%H%M%S")})


def to_yaml(config: RunConfig) -> str:
    """The resolved recipe, every default spelled out, as written into the run directory."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
