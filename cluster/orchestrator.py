"""The driver: owns the self-play loop and holds handles to the named actors.

Its phases read like the algorithm: `play` each of the recipe's games (games/), `train` on
their pairs, and `finish`: broadcast the weights, evaluate. cluster/overlap.py says when each
runs (one after another, or with `self_play.max_staleness` the learner behind play). Responses, pairs and weights move between actors
as Ray object references; in head-to-head and adversarial play the driver sees only prompts,
opponents' names, verdicts or scores (the judge pool collects those small records here, where
it keeps deadlines and retries) and summaries (refinement and skill play fetch the short
answers they build the next prompts from).
"""
from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import ray
from tqdm.auto import tqdm

from actors.actor import generator_actor, stop_generator
from actors.generator import GREEDY, EngineSpec, Sampling, kv_bytes_per_token
from actors.pool import GeneratorPool, Launch, launch
from cluster.agents import Agent
from cluster.config import ConfigError, JudgeConfig, LeagueConfig, ModelConfig, RunConfig
from cluster.control import AutoscalePolicy, control_actor, desired_generators, generator_bundles
from cluster.diversity import diversity
from cluster.metrics import RunMetrics
from cluster.overlap import Round, Step, run_schedule
from cluster.resume import ResumePoint, driver_state
from cluster.retention import compared, retention_problems, retention_scorers, retention_tasks, sft_problems
from cluster.round_robin import play_round_robin
from cluster.run_dir import RunDir
from cluster.stopping import OUT_OF_TIME, Decision, Pace, StopRequest
from cluster.win_rate import v0_answers, win_rate_vs_v0
from games.base import Game, PlayContext, pair_file, registry
from judge.actor import judge_actor
from judge.constitution import Principle
from judge.pool import JudgePool
from judge.registry import JudgeSpec
from league.actor import league_actor
from league.league import CURRENT, LeagueSettings
from league.roles import RoleRules
from learner.actor import kill_learner, learner_actor
from learner.checkpoint import fresh_beside, move_into_place
from learner.learner import DPOSettings
from learner.lora import LoRAOptions
from learner.pretrained import is_builtin, resolve_model
from learner.tiny_model import TINY_CONTEXT, build_tiny_model
from prompts.chat import PromptRenderer
from tasks.base import metric
from trackers.base import SinkSettings, Trackers

# The learner's statistics for a round it was not called for (dropped as stale, cluster/overlap.py).
NOT_TRAINED = {"pairs": 0.0, "external_pairs": 0.0, "loss": math.nan, "dpo_loss": math.nan, "nll": math.nan, "reward_accuracy": math.nan,
               "seconds": 0.0}
SFT_CHUNK = 10  # SFT steps per call to the learner, so the driver can show progress
BEFORE_WARM_UP = "before-warm-up"  # what snapshot engines serve until a game asks them for a snapshot (none is named so)
# Head-to-head fields of a row where no game was played (iteration 0, or a recipe without head-to-head).
NO_GAMES: dict[str, Any] = {"win_rate_vs_previous": None, "win_rate_vs_previous_ci": None, "games": 0, "games_per_s": None,
                             "truncated": 0}


class Orchestrator:
    def __init__(self, config: RunConfig, run: RunDir, show_progress: bool = True, generation: int = 0) -> None:
        self.config = config
        self.run = run
        self.generation = generation  # restarts after a dead actor (see cluster/stopping.py); part of actor names
        self.show_progress = show_progress
        self.rng = np.random.default_rng(config.seed)
        self.task = config.task.build(config.seed)
        self.held_out = self.task.held_out()
        self.diversity_examples = self.held_out[: config.eval.diversity_prompts]
        g = config.generator
        self.sampling = Sampling(g.temperature, g.top_p, g.max_new_tokens, tuple(g.stop))
        self.greedy = Sampling(GREEDY.temperature, GREEDY.top_p, g.max_new_tokens, tuple(g.stop))
        self.version = 0
        self.retention_tasks = retention_tasks(config)
        self.retention = retention_problems(config)
        self.retention_scorers = retention_scorers(config)
        self.retention_start: dict[str, float] = {}
        self.exploiters: dict[str, Agent] = {}  # league roles' exploiters (matchmaking: alphastar)
        self.launched: list[Launch] = []  # every generator launch (actors/pool.py)
        self.exploiter_learners: list[Any] = []
        self.v0_answers: list[str] = []  # an open-ended task's yardstick (`evaluate`)
        self.trackers: Trackers | None = None  # logging.sinks, open while the loop runs
        self.untracked: list[dict[str, Any]] = []  # rows written but not final yet (no state saved since)
        self.pace = Pace(config.self_play.iterations, config.self_play.save_every, config.self_play.max_seconds, time.perf_counter())
        self.decision = Decision(saving=False, stopped=None)  # taken at the last broadcast (`finish`)
        self.state_write: StateWrite | None = None  # a state being saved: its learners' parts asked for
        self.training_from = self.trained_until = 0.0  # when the learner's latest round was started, and the last one ended

    # ----------------------------------------------------------------- setup
    def start(self, base: Path | None = None, warm_up: bool = True) -> None:
        """Start the actors on the policy at `base` (by default the recipe's model, or the tiny
        model built in the run directory), warm it up with SFT unless told not to, freeze it as
        snapshot v0 and start the generators."""
        self.open_trackers()
        policy = Path(base or base_model(self.config, self.run, self.show_progress))
        self._start_core(policy, resume=False)
        cfg = self.config
        tokens = [t for game in self.games() for t in game.special_tokens(cfg)]
        # the engines load (mostly imports, one core each) while the learner starts and warms up,
        # on the starting checkpoint: unless the vocabulary grows, or snapshots are adapters on v0
        early = None if tokens or self.adapter_snapshots else self._launch_generators(str(policy), 0, BEFORE_WARM_UP, (str(policy), 0))
        if tokens:
            ray.get(self.learner.add_tokens.remote(tokens))
        if warm_up:
            self.warm_up()
        ray.get(self.learner.fold_adapter.remote())  # with LoRA, v0 is the base of every snapshot adapter
        v0 = ray.get(self.learner.save_checkpoint.remote(str(self.run.checkpoint("v0"))))
        ray.get(self.league.admit.remote(0, v0))
        self._pools_from(early or self._launch_generators(v0, 0, "v0", (v0, 0)))
        if early is not None:  # v0 is the warmed-up policy: its weights to the current policy's engines
            self.policy_pool.sync_from(self.learner)
        self._keep_v0_answers()
        self._start_exploiters()

    def start_resumed(self, point: ResumePoint) -> None:
        """Start the actors where a saved state left off: the learner from its state, the league
        from the run's `league.json` (already rewound), the generators serving that version
        (launched first, so their engines load while the learner loads its state)."""
        policy = point.learner / "policy"
        self.open_trackers()
        self._start_core(policy, resume=True)
        if self.adapter_snapshots:  # the snapshot engine serves the league as adapters on v0
            latest, checkpoint = "v0", (str(self.run.checkpoint("v0")), 0)
        else:
            snapshots = ray.get(self.league.checkpoints.remote())
            latest = max(snapshots, key=lambda n: snapshots[n][1])
            checkpoint = snapshots[latest]
        # engines load while the learner loads; serving the policy as an adapter, on its base v0, which takes the adapter once the learner has it
        served = self.run.checkpoint("v0") if self.adapter_broadcast else policy
        launches = self._launch_generators(str(served), point.version, latest, checkpoint)
        self.version = ray.get(self.learner.load_state.remote(str(point.learner)))
        ray.get(self.league.set_rng_state.remote(point.league_rng))
        self.rng.bit_generator.state = point.rng
        self.retention_start = point.retention_start
        self._pools_from(launches)
        if self.adapter_broadcast:
            self.policy_pool.sync_from(self.learner)
        self._keep_v0_answers()
        self._start_exploiters(point.learner.parent / "agents")

    def _keep_v0_answers(self) -> None:
        """An open-ended task is measured against v0's held-out answers: taken now, while the
        generators serve v0, or read back from the run directory when resuming."""
        if self.task.open_ended:
            self.v0_answers = v0_answers(self.run.root, self.held_out_answers)

    def _start_core(self, policy: Path, resume: bool) -> None:
        """The learner on `policy`, the league (fresh, or the run's own with `resume`), the judges,
        and the external preference data: what a fresh and a resumed run start alike."""
        cfg = self.config
        self.render = PromptRenderer.for_model(policy, cfg.model.chat_template, cfg.model.system_prompt)
        self.max_model_len = context_length(cfg.model, policy)
        check_kv_cache(cfg, policy, self.max_model_len)
        settings = DPOSettings(**cfg.dpo.model_dump(), answer_end=self.render.answer_end)
        gpus = cfg.cluster.num_learner_gpus
        self.learner = learner_actor(self.actor_name("learner"), policy, settings, cfg.seed, gpus, near_driver(gpus), cfg.learner.lora,
                                     cfg.learner.ranks, snapshots_beside_training=cfg.self_play.max_staleness > 0)
        league = league_settings(cfg.league)
        self.league = league_actor(self.actor_name("league"), self.run.root, league, cfg.seed, resume, near_driver())
        self.start_judge(cfg.judge)
        self.control = control_actor(self.actor_name("control"), near_driver())
        self.metrics = RunMetrics(self.run.root.name)
        if cfg.data.preferences is not None:
            ray.get(self.learner.mix_in.remote(str(cfg.data.preferences.resolve()), cfg.data.preference_ratio))

    def _launch_generators(self, policy: str, version: int, snapshot: str, checkpoint: tuple[str, int]) -> dict[str, Launch]:
        """Start the current policy's generators (serving `policy` at `version`) and the snapshot
        engines (the league's `snapshot` at `checkpoint`) side by side, without waiting for them:
        an engine's start is mostly imports, one core each."""
        g = self.config.generator
        shared = not g.snapshot_replicas  # the current policy's engines answer for the snapshots too
        launches = {"current": self.launch_generators("generator-current", policy, CURRENT, version, g.replicas, learning=True, shared=shared)}
        if not shared:
            launches["snapshots"] = self.launch_generators("generator-snapshots", checkpoint[0], snapshot, checkpoint[1],
                                                           g.snapshot_replicas, adapters=self.adapter_snapshots)
        return launches

    def _pools_from(self, launches: dict[str, Launch]) -> None:
        """Wait for the launched generators and make their pools."""
        if self.config.self_play.max_staleness:  # snapshots of the served version are taken while the learner trains on
            ray.get(self.learner.keep_served.remote())
        self.policy_pool = launches["current"].pool()
        self.snapshot_pool = launches["snapshots"].pool() if "snapshots" in launches else self.policy_pool

    def generator_pools(self) -> list[GeneratorPool]:
        """Every pool of this run once each: the current policy's, the snapshots' (unless the
        current policy's answers for them) and the exploiters'."""
        pools = [getattr(self, "policy_pool", None), getattr(self, "snapshot_pool", None)] + [a.generator for a in self.exploiters.values()]
        return list({id(p): p for p in pools if p is not None}.values())

    @property
    def adapter_snapshots(self) -> bool:
        """The league's snapshots are LoRA adapters on v0 (learner/lora.py), served by engines on v0."""
        lora = self.config.learner.lora
        return lora is not None and lora.snapshots == "adapters"

    @property
    def adapter_broadcast(self) -> bool:
        """The learning agents' engines serve their policy as a LoRA adapter on v0 (learner/lora.py)."""
        lora = self.config.learner.lora
        return lora is not None and lora.broadcast == "adapter"

    def launch_generators(self, role: str, path: str, policy: str, version: int, size: int, seed_offset: int = 0,
                          learning: bool = False, adapters: bool = False, shared: bool = False) -> Launch:
        """A pool of generators named `<role>-<n>`, each starting on the checkpoint at `path` (a
        generator joining later then takes the pool's latest weights), launched without waiting
        (`Launch.pool()` waits). A `learning` agent's pool takes its learner's weights over the
        configured transfer (with `learner.lora.broadcast: adapter`, as an adapter on `path`, v0);
        snapshots load checkpoints, or with `adapters` are LoRA adapters on `path`; a `shared` pool
        answers for the snapshots as well as for its own policy."""
        cfg = self.config
        g = cfg.generator
        transfer = cfg.transfer_backend if learning else None
        lora = cfg.learner.lora
        # adapter-only updates are deltas on v0, the base every learner holds after the warm-up's fold (exploiters reset
        # to it, a resume loads it): a generator joining later takes the pool's latest update, so it must start there too
        assert not (learning and self.adapter_broadcast) or Path(path) == self.run.checkpoint("v0"), path
        spec = EngineSpec(path, cfg.model.dtype, self.max_model_len, g.kv_cache_bytes, cfg.seed + seed_offset,
                          transfer, g.tensor_parallel_size, g.gpu_memory_utilization,
                          max_loras=_adapter_slots(lora, adapters or shared, learning and self.adapter_broadcast),
                          max_lora_rank=lora.served_rank if lora else 16,
                          shared=shared)

        def start(serial: int) -> Any:
            return generator_actor(
                self.actor_name(f"{role}-{serial}"), spec, policy, version, num_cpus=g.num_cpus, num_gpus=g.num_gpus, resources=g.resources
            )

        options: dict[str, Any] = dict(retries=g.retries, sync_timeout_s=g.sync_timeout_s, start_timeout_s=g.start_timeout_s,
                                       transfer=transfer, ranks_per_generator=g.tensor_parallel_size)
        launched = launch(start, size, **options)
        self.launched.append(launched)  # stopped with the run even if its pool never formed
        return launched

    def _start_exploiters(self, saved: Path | None = None) -> None:
        """The exploiters of league roles (none unless `league.matchmaking: alphastar`): each a
        learner and a generator of its own, from the starting snapshot v0, or from their states
        in `saved` when resuming (the league already knows them then); all start side by side."""
        cfg = self.config
        if cfg.league.matchmaking != "alphastar":
            return
        settings = DPOSettings(**cfg.dpo.model_dump(), answer_end=self.render.answer_end)
        roles = dict(cfg.league.roles.exploiters())
        policies = {name: saved / name / "policy" if saved else self.run.checkpoint("v0") for name in roles}
        learners = {
            name: learner_actor(self.actor_name(f"learner-{name}"), policies[name], settings, cfg.seed + k, cfg.cluster.num_learner_gpus,
                                near_driver(cfg.cluster.num_learner_gpus), cfg.learner.lora, cfg.learner.ranks)
            for k, name in enumerate(roles, start=1)
        }
        self.exploiter_learners += learners.values()
        loads = [learner.load_state.remote(str(saved / name)) for name, learner in learners.items()] if saved else []
        versions = dict(zip(learners, ray.get(loads))) if saved else dict.fromkeys(learners, 0)
        served = dict.fromkeys(roles, self.run.checkpoint("v0")) if self.adapter_broadcast else policies  # adapters on v0, as the main agent's
        launches = {name: self.launch_generators(f"generator-{name}", str(served[name]), name, versions[name], 1, seed_offset=k, learning=True)
                    for k, name in enumerate(roles, start=1)}
        for name, role in roles.items():
            if saved is None:
                ray.get(self.league.add_agent.remote(name, role))
            self.exploiters[name] = Agent(name, role, learners[name], launches[name].pool(), versions[name])
            if saved is not None and self.adapter_broadcast:
                self.exploiters[name].generator.sync_from(learners[name], name)

    def main_agent(self) -> Agent:
        """The current policy as a learning agent, like the exploiters: its learner and generators."""
        return Agent(CURRENT, "main", self.learner, self.policy_pool, self.version)

    def begin_state(self) -> StateWrite:
        """A state's folder, with the learners' parts of it asked for now: before the learner's
        next round (its `train` waits for them), so they hold what the state's rows say."""
        tmp = fresh_beside(self.run.root / "state")
        exploiters = [a.learner.save_state.remote(str(tmp / "agents" / a.name)) for a in self.exploiters.values()]
        return StateWrite(tmp, self.learner.save_state.remote(str(tmp / "learner")), exploiters)

    def end_state(self, write: StateWrite, iteration: int, seconds: float, waiting: Sequence[Round] = ()) -> None:
        """The rest of what a resumed run needs (the league, the driver's counters, the rounds
        played but not yet trained on: `waiting`), then the whole swapped into `state/` (see cluster/resume.py)."""
        point = ResumePoint(
            iteration, self.version, self.rng.bit_generator.state, ray.get(self.league.rng_state.remote()),
            self.retention_start, seconds, self.run.root / "state" / "learner",
            tuple({"iteration": r.iteration, "version": r.version, "fields": r.fields, "seconds": r.seconds} for r in waiting),
        )
        ray.get([write.learner, *write.exploiters, self.league.save_to.remote(str(write.tmp / "league.json"))])
        (write.tmp / "driver.json").write_text(driver_state(point))
        move_into_place(write.tmp, self.run.root / "state")
        self.state_write = None

    def start_judge(self, judge: JudgeConfig) -> None:
        """Start the pool of judge actors the config describes, replacing the one running (new
        judges get new names: a killed actor's name is not free at once)."""
        old = getattr(self, "judges", None)
        self._pools = getattr(self, "_pools", 0) + 1
        pool = "judge" if self._pools == 1 else f"judge{self._pools}"
        spec = judge_spec(judge, self.config)
        if judge.kind == "pairwise_llm" and getattr(self, "judge_llm", None) is None:
            g = self.config.generator
            llm = resolve_model(str(judge.llm), self.show_progress) if is_builtin(judge.llm) else judge.llm
            engine = EngineSpec(str(llm), self.config.model.dtype, judge.llm_max_model_len, g.kv_cache_bytes, self.config.seed,
                                gpu_memory_utilization=g.gpu_memory_utilization)
            self.judge_llm_path = llm
            self.judge_llm = generator_actor(self.actor_name("judge-llm"), engine, "judge", 0, num_cpus=g.num_cpus, num_gpus=g.num_gpus)
        if judge.kind == "pairwise_llm":
            spec = replace(spec, llm=self.judge_llm, llm_sampling=Sampling(0.0, 1.0, judge.llm_max_new_tokens), llm_path=str(self.judge_llm_path))

        def start(slot: int, generation: int) -> Any:
            role = f"{pool}-{slot}" + (f"-r{generation}" if generation else "")
            return judge_actor(self.actor_name(role), spec, judge.num_gpus, near_driver(judge.num_gpus))

        self.judges = JudgePool(start, judge.actors, judge.batch_size, judge.timeout_s, judge.retries, judge.max_error_share)
        if old is not None:
            old.stop()

    def actor_name(self, role: str) -> str:
        """Named after the run, so two runs on one cluster never collide and the dashboard says whose actor it is."""
        digest = hashlib.sha1(str(self.run.root).encode()).hexdigest()[:6]
        restarted = f"-g{self.generation}" if self.generation else ""  # a killed actor's name is not free at once
        return f"selfplay-{self.run.root.name}-{digest}{restarted}-{role}"

    def stop(self) -> None:
        """End this run's actors (and free their engines) now rather than when the driver exits."""
        if getattr(self, "judges", None) is not None:
            self.judges.stop()
        for pool in self.generator_pools():
            pool.stop()
        for launched in self.launched:  # a pool that never formed (its start failed) leaves these
            for actor in launched.actors:
                stop_generator(actor)
        for role in ("judge_llm", "league", "control"):
            handle = getattr(self, role, None)
            if handle is not None:
                ray.kill(handle)
        for learner in [getattr(self, "learner", None)] + self.exploiter_learners:
            if learner is not None:
                kill_learner(learner)
        if self.trackers is not None:  # still open: the run did not end by finish_run (a fault, a restart, an abandoned stop)
            self.trackers.close("FAILED")

    def warm_up(self) -> None:
        """SFT on reference answers until `sft.steps`, or until the task's metric on a validation
        sample of training examples (greedy answers from the learner) reaches the stop."""
        sft = self.config.sft
        if not sft.steps:
            return
        validation = self.task.sft(sft.validation_size, np.random.default_rng(self.config.seed + 99))
        val_prompts = [self.render(p) for p in validation]
        games = self.games()
        bar = tqdm(total=sft.steps, desc="SFT warm-up", unit="step", disable=not self.show_progress or not sft.steps)
        for begin in range(0, sft.steps, SFT_CHUNK):
            batches = []
            for _ in range(min(SFT_CHUNK, sft.steps - begin)):
                problems = sft_problems(self.task, self.retention_tasks, sft.retention_share, sft.batch_size, self.rng)
                batches.append(([self._sft_prompt(self.render(p), games) for p in problems], [p.answer for p in problems]))
            loss = ray.get(self.learner.sft_steps.remote(batches, sft.learning_rate, sft.warmup_steps))
            bar.update(len(batches))
            if sft.stop_at_accuracy is None:  # no stop to check: the validation answers would only cost time
                bar.set_postfix(loss=f"{loss:.3f}")
                continue
            answers = ray.get(self.learner.greedy.remote(val_prompts, self.greedy.max_new_tokens, self.greedy.stop))
            val = metric(self.task, validation, answers)
            bar.set_postfix(loss=f"{loss:.3f}", val_acc=f"{val:.2f}")
            if val >= sft.stop_at_accuracy:
                break
        bar.close()

    # ------------------------------------------------------------------ loop
    def _sft_prompt(self, prompt: str, games: list[Game]) -> str:
        """A warm-up prompt as each game wants it (skill play tags half of them)."""
        for game in games:
            prompt = game.warm_up_prompt(self.config, prompt, self.rng)
        return prompt

    def games(self) -> list[Game]:
        """The recipe's games (`self_play.modes`), in its order, each once."""
        known = registry()  # the folder is read once; later calls copy a small dict
        return [known[mode] for mode in dict.fromkeys(self.config.self_play.modes)]

    def context(self) -> PlayContext:
        """What the games may use this iteration."""
        return PlayContext(
            self.config, self.task, self.render, self.rng, self.sampling, self.greedy, self.judges, self.league, self.snapshot_pool,
            {CURRENT: self.main_agent()} | self.exploiters, self.run,
        )

    # ------------------------------------------------- phases (cluster/overlap.py)
    def play(self, it: int) -> Round:
        """Round `it`: each game played by the version the generators serve now, recorded and rated
        (and the round-robin's evaluation games when due, kept out of training)."""
        start, judged = time.perf_counter(), self.judges.busy_seconds
        self.scale_generators()
        self.take_tokens()  # the evaluation's, before this round
        played = [game.play(self.context(), self.main_agent(), it) for game in self.games()]
        fields = {k: v for p in played for k, v in p.fields.items()}
        robin = self.config.eval.round_robin
        if robin is not None and it % robin.every == 0:
            fields["round_robin_games"] = play_round_robin(self.context(), self.main_agent(), it, robin.games)
        seconds = {"play": time.perf_counter() - start, "judging": self.judges.busy_seconds - judged,
                   "recording": ray.get(self.league.take_recording_seconds.remote())}
        tokens = self.take_tokens()
        fields.update(generated_tokens=tokens, tokens_per_s=tokens / seconds["play"])
        return Round(it, self.version, fields, [p.pairs for p in played], seconds)

    def take_tokens(self) -> int:
        """Tokens the generators answered with since the last call: the current policy's, the
        snapshots' and, with league roles, the exploiters' (the main agent plays them live)."""
        return sum(pool.take_tokens() for pool in self.generator_pools())

    def train(self, round_: Round) -> Any:
        """The learner started on the round's pairs, once its part of a state being saved is
        written; a reference to its statistics (None for a round dropped as stale: the learner
        is not called, so its counters do not move)."""
        after = self.state_write.learner if self.state_write is not None else None
        self.training_from = time.perf_counter()
        return self.learner.train.remote(*round_.pairs, after=after) if round_.pairs else None

    def learner_version(self) -> int:
        return self.version  # the learner is idle when asked: its version is the one just broadcast

    def finish(self, round_: Round, training: Any, began: float, played: Round | None) -> dict[str, Any]:
        """The round's row, less its evaluation: the learner's update waited for and broadcast,
        the exploiters' rounds (they train in step), the phase times so far of this step (whose
        play, `played`, is round_ itself when synchronous, a later round with the pipeline), and
        what the run does after it: whether it saves its state (the learners' parts asked for
        now, before the learner's next round) and whether it stops."""
        waited = time.perf_counter()
        stats = ray.get(training) if training is not None else NOT_TRAINED
        waited = time.perf_counter() - waited
        self.trained_until = self.training_from + stats["seconds"] if training is not None else began  # by the learner's own seconds
        staleness = self.version - round_.version
        row = self.broadcast(round_.iteration, round_.fields, stats)
        if self.exploiters:
            row["exploiters"] = {name: self.train_exploiter(round_.iteration, agent) for name, agent in self.exploiters.items()}
        play = dict(played.seconds) if played is not None else {"play": 0.0, "judging": 0.0, "recording": 0.0}
        play["recording"] += ray.get(self.league.take_recording_seconds.remote()) if self.exploiters else 0.0  # theirs, in this step
        row.update(played_by=round_.version, staleness=staleness,
                   phase_s={**play, "learning": stats["seconds"], "weight_sync": row["weight_sync_s"], "waited_for_learner": waited})
        self.decision = self.pace.at_broadcast(round_.iteration, time.perf_counter())
        self.state_write = self.begin_state() if self.decision.saving else None
        return row

    def evaluation(self, row: dict[str, Any], began: float, learner_busy_from: float | None) -> dict[str, Any]:
        """The broadcast version evaluated, while the learner trains on its next round if it
        started one (`learner_busy_from`): the row whole, `seconds` the step's."""
        row = self.evaluated(row)
        end = time.perf_counter()
        row["seconds"] = end - began
        # from when the learner ended this round (or the step began, if earlier) to when it started the next
        idle = (learner_busy_from or end) - max(began, self.trained_until)
        row["phase_s"].update(evaluation=row.pop("evaluation_s"), learner_idle=max(0.0, idle))
        return row

    def stopping(self) -> bool:
        return self.decision.stopped is not None

    def train_exploiter(self, it: int, agent: Agent) -> dict[str, Any]:
        """One round of an exploiter: its games (whom it plays is its role's rule), its snapshot
        and reset when the rules say so, DPO on its pairs (unless it just started over: those
        games were another policy's), the new weights to its generator; its row's fields."""
        n = self.config.league.roles.games_per_iteration
        games = self.exploiter_games()
        played = [game.play(self.context(), agent, it, n) for game in games]
        fields = {k: v for p in played for k, v in p.fields.items()}
        fields["admitted"] = next((p.fields["admitted"] for p in played if p.fields["admitted"]), None)  # any game may admit it
        reset = bool(fields["admitted"]) and ray.get(self.league.reset_after_snapshot.remote(agent.name))
        if reset:
            ray.get(agent.learner.reset_to.remote(str(self.run.checkpoint("v0"))))
            stats = {"pairs": 0.0, "loss": float("nan")}
        else:
            stats = ray.get(agent.learner.train.remote(*[p.pairs for p in played]))
        agent.version = agent.generator.sync_from(agent.learner, agent.name)
        return {
            "role": agent.role,
            "version": agent.version,
            **self.evaluate(agent.generator),
            "games": sum(int(fields[game.counted or "games"]) for game in games),
            "win_rate_vs_main": ray.get(self.league.win_rate.remote(agent.name, CURRENT)),
            "elo": fields["elo"],
            "pairs": int(stats["pairs"]),
            "loss": _finite(stats["loss"]),
            "admitted": fields["admitted"],
            "reset": reset,
        }

    def exploiter_games(self) -> list[Game]:
        """The recipe's games an exploiter plays: those against matchmade opponents (head-to-head,
        multi-turn; the recipe has one, checked when it is read)."""
        return [game for game in self.games() if game.matchmade]

    def scale_generators(self, target: int | None = None) -> int:
        """Resize the current policy's generator pool: to `target`, else to what `selfplay scale`
        asked for since the last iteration, else (autoscaling) to what the last iteration's queue
        depth wants. Ray's autoscaler is told the resources of the new size first. Returns the size."""
        pool, g, auto = self.policy_pool, self.config.generator, self.config.cluster.autoscale
        target = target or ray.get(self.control.take.remote())
        depth = pool.take_requested()
        if target is None and auto.enabled and depth:
            target = desired_generators(depth, AutoscalePolicy(auto.min_generators, auto.max_generators, auto.prompts_per_generator))
        if target is None or target == pool.size:
            return pool.size
        # what the run's generators need from now on (a shrink releases the earlier request)
        bundles = generator_bundles(target + g.snapshot_replicas + len(self.exploiters), g.num_cpus, g.num_gpus, g.resources, g.tensor_parallel_size)
        if bundles:
            from ray.autoscaler.sdk import request_resources

            request_resources(bundles=bundles)
        self._print(f"generators for the current policy: {pool.size} -> {target}")
        pool.resize(target)
        return pool.size

    def learn(self, it: int, fields: dict[str, Any], *pairs: Any) -> dict[str, Any]:
        """DPO on the pairs (tables or references to them), the new weights to the generator, and
        the evaluation: the iteration's metrics row, with the play phase's `fields` in it."""
        start = time.perf_counter()
        row = self.learned(it, fields, ray.get(self.learner.train.remote(*pairs)), start)
        del row["evaluation_s"]
        return row

    def learned(self, it: int, fields: dict[str, Any], stats: dict[str, float], start: float) -> dict[str, Any]:
        """After the learner's update (its `stats`): the new weights to the generators and the
        evaluation; the row, its `seconds` counted from `start`."""
        row = self.evaluated(self.broadcast(it, fields, stats))
        row["seconds"] = time.perf_counter() - start
        return row

    def broadcast(self, it: int, fields: dict[str, Any], stats: dict[str, float]) -> dict[str, Any]:
        """The learner's new weights to the current policy's generators; the row so far."""
        row: dict[str, Any] = {"iteration": it, **NO_GAMES, "elo": None, **fields}
        self.version = self.policy_pool.sync_from(self.learner)
        row.update(
            generators=self.policy_pool.size,
            generators_replaced=self.policy_pool.replaced,
            weight_sync_s=self.policy_pool.last_sync_seconds,
            queue_depth=self.policy_pool.requested,
            learner_seconds=stats["seconds"],
            pairs=int(stats["pairs"]),
            external_pairs=int(stats["external_pairs"]),
            loss=_finite(stats["loss"]),
            dpo_loss=_finite(stats["dpo_loss"]),
            nll=_finite(stats["nll"]),
            reward_accuracy=_finite(stats["reward_accuracy"]),
            **({"pg_loss": _finite(stats["pg_loss"])} if "pg_loss" in stats else {}),  # REINFORCE on game moves
            version=self.version,
        )
        return row

    def evaluated(self, row: dict[str, Any]) -> dict[str, Any]:
        """The row with the served version's evaluation: its held-out metric, the games' own
        measures, retention and diversity, and the seconds they took (`evaluation_s`)."""
        start = time.perf_counter()
        row.update(**self.evaluate(), **self.evaluate_games(), **self.measure_retention(), **self.measure_diversity())
        row["evaluation_s"] = time.perf_counter() - start
        return row

    def evaluate(self, generator: Any = None) -> dict[str, Any]:
        """The task's held-out metric (greedy answers) of the policy a generator (the current
        policy's by default) now serves, as `accuracy`; an open-ended task's is its win rate
        against v0, with `accuracy_interval` beside it."""
        responses = self.held_out_answers(generator)
        if not self.task.open_ended:
            return {"accuracy": metric(self.task, self.held_out, responses)}
        return win_rate_vs_v0(self.judges.judge, self.held_out, responses, self.v0_answers)

    def evaluate_games(self) -> dict[str, Any]:
        """Each game's own measures of the current policy (multi-turn play: win rates against fixed opponents)."""
        context, agent = self.context(), self.main_agent()
        return {k: v for game in self.games() for k, v in game.evaluate(context, agent).items()}

    def held_out_answers(self, generator: Any = None) -> list[str]:
        generator = generator or self.policy_pool
        return ray.get(generator.generate([self.render(p) for p in self.held_out], self.greedy))

    def measure_diversity(self) -> dict[str, Any]:
        """Distinct-n and self-BLEU of sampled answers to a fixed prompt set, with the same seeds every time."""
        e = self.config.eval
        prompts = [self.render(p) for p in self.diversity_examples for _ in range(e.diversity_samples)]
        seeds = list(range(len(prompts)))
        tokens = ray.get(self.policy_pool.generate_tokens(prompts, self.sampling, seeds))
        groups = [tokens[i : i + e.diversity_samples] for i in range(0, len(tokens), e.diversity_samples)]
        measured: dict[str, Any] = diversity(groups)
        measured["mode_collapse"] = measured["distinct_2"] < e.min_distinct_2
        if measured["mode_collapse"]:
            self._print(f"warning: distinct-2 {measured['distinct_2']:.3f} is below {e.min_distinct_2}: the policy may be collapsing")
        return measured

    def measure_retention(self) -> dict[str, Any]:
        """Greedy accuracy on each retention task, and its change since the first measurement
        (the starting policy); empty when the recipe names no retention task."""
        if not self.retention:
            return {}
        names = list(self.retention)
        problems = [p for name in names for p in self.retention[name]]
        responses = ray.get(self.policy_pool.generate([self.render(p) for p in problems], self.greedy))
        now, begin = {}, 0
        for name in names:
            k = len(self.retention[name])
            now[name] = metric(self.retention_scorers[name], problems[begin : begin + k], responses[begin : begin + k])
            begin += k
        self.retention_start = self.retention_start or now
        return {"retention": now, "retention_vs_start": compared(now, self.retention_start)}

    def initial_row(self) -> dict[str, Any]:
        """Iteration 0 of `metrics.jsonl`: the starting policy, before any self-play."""
        return {
            "iteration": 0, **self.evaluate(), **self.evaluate_games(), **self.measure_retention(), **NO_GAMES,
            "elo": self.config.league.initial_elo, "seconds": 0.0,
        }

    def run_loop(self, resumed: tuple[ResumePoint, list[dict[str, Any]]] | None = None, stop: StopRequest | None = None) -> dict[str, Any]:
        """Iterations up to `self_play.iterations`, from the first or from where a resumed run
        stopped (`resumed`: its point and the metrics rows up to it), or until `stop` is requested."""
        if resumed is None:
            first, rows, done, spent = self.initial_row(), [], 0, 0.0
            retained = "".join(f", {name} {acc:.3f}" for name, acc in first.get("retention", {}).items())
            self._print(f"held-out accuracy after SFT: {first['accuracy']:.3f}{retained}")
            self.run.append_metrics(first)
        else:
            point, (first, *rows) = resumed
            done, spent = point.iteration, point.seconds
            self._print(f"resuming after iteration {done} (policy version {self.version})")
        self.untracked = [first, *rows]  # iteration 0's row, or those a resume kept: final, and sent unless a tracker has them
        self.track()
        played = resumed[0].played if resumed else 0  # with the asynchronous pipeline, rounds past `done` may wait for the learner
        waiting = self.waiting_rounds(resumed[0]) if resumed else []
        started, stopped = time.perf_counter() - spent, None
        iterations = self.config.self_play.iterations
        self.pace = replace(self.pace, started=started, stop=stop)
        if stop is not None and stop.requested:  # asked during start-up or warm-up
            return self.finish_run(first, rows, started, stop.name)
        bar = tqdm(desc="self-play", unit="iter", disable=not self.show_progress, initial=done, total=iterations)
        steps = run_schedule(self, range(played + 1, iterations + 1), self.config.self_play.max_staleness, waiting)
        for step in steps:
            rows.append(step.row)
            bar.update(1)
            waiting = step.waiting
            stopped = self.after_step(step)
            if stopped is not None:  # rounds played and not yet trained on stay in the saved state, for a resume
                steps.close()
                break
        bar.close()
        return self.finish_run(first, rows, started, stopped if stopped != OUT_OF_TIME else None, [r.iteration for r in waiting])

    def after_step(self, step: Step) -> str | None:
        """A finished row written and shown, the state begun at its broadcast completed, the rows
        sent to the trackers once final; why the run stops now (the stop's name, OUT_OF_TIME),
        or None to go on."""
        row, it = step.row, step.row["iteration"]
        self.run.append_metrics(row)
        self.metrics.record(row, self.judges.take_call_seconds())
        self._print(format_row(row))
        if self.state_write is not None:
            self.end_state(self.state_write, it, time.perf_counter() - self.pace.started, step.waiting)
        self.untracked.append(row)
        if self.decision.saving or not self.pace.save_every:  # final now: a resume would not play these rows again
            self.track()
        stopped = self.pace.after_evaluation(self.decision)
        if stopped == OUT_OF_TIME:
            self._print(f"self-play time budget of {self.pace.max_seconds:g} s reached after {it} iterations")
        return stopped

    def open_trackers(self) -> None:
        """The recipe's experiment trackers, opened on this run's tracker runs (a resumed or
        restarted run's too) before any actor starts: one that cannot open costs nothing."""
        log = self.config.logging
        if not log.sinks:
            return
        settings = SinkSettings(self.run.root, self.run.root.name, log.project, self.config.model_dump(mode="json"),
                                wandb_mode=log.wandb_mode, mlflow_uri=log.mlflow_uri)
        self.trackers = Trackers.open(log.sinks, settings)

    def track(self) -> None:
        """The rows written since the last call, to the trackers (once they are final)."""
        if self.trackers is not None:
            self.trackers.log(self.untracked)
        self.untracked = []

    def waiting_rounds(self, point: ResumePoint) -> list[Round]:
        """A resumed run's rounds played but not yet trained on, their pairs read back from `pairs/`."""
        rounds = []
        for saved in point.waiting:
            it = saved["iteration"]
            pairs = [pq.read_table(self.run.root / "pairs" / pair_file(it, CURRENT, game.tag)) for game in self.games()]
            rounds.append(Round(it, saved["version"], saved["fields"], pairs, saved["seconds"]))
        return rounds

    def finish_run(self, first: dict[str, Any], rows: list[dict[str, Any]], started: float, stopped: str | None,
                   untrained: Sequence[int] = ()) -> dict[str, Any]:
        """The run's `summary.json` (also returned); `untrained`: rounds played but not trained on
        when it stopped (the asynchronous pipeline stopped early; a resume trains on them)."""
        initial = first["accuracy"]
        ratings = ray.get(self.league.ratings.remote())
        bt = ray.get(self.league.bradley_terry.remote(self.config.eval.bootstrap_samples))
        checkpoints = ray.get(self.league.checkpoints.remote())
        snapshots = sorted(checkpoints, key=lambda name: checkpoints[name][1])
        summary = {
            "initial_accuracy": initial,
            "final_accuracy": rows[-1]["accuracy"] if rows else initial,
            "best_accuracy": max([initial] + [r["accuracy"] for r in rows]),
            "snapshots": snapshots,
            "elo_by_policy": ratings,
            "bt_by_policy": bt,
            "games": sum(r.get("games", 0) for r in rows),
            "retention_initial": first.get("retention"),
            "retention_final": rows[-1].get("retention") if rows else first.get("retention"),
            "exploiters": rows[-1].get("exploiters") if rows else None,
            "iterations": len(rows),
            "seconds": time.perf_counter() - started,
            "run_dir": str(self.run.root),
            "stopped_by": stopped,
            "untrained_rounds": list(untrained),
        }
        self.run.write_summary(summary)
        if self.trackers is not None:  # the report's figures, drawn from what is on disk now
            from report.page import write_report  # matplotlib: only when there are trackers

            self.track()
            self.trackers.log_figures(write_report(self.run.root).parent)
            self.trackers.close("KILLED" if stopped else "FINISHED")
            self.trackers = None
        return summary

    def _print(self, line: str) -> None:
        if self.show_progress:
            tqdm.write(line)


@dataclass
class StateWrite:
    """A state being saved (`Orchestrator.begin_state`): its temporary folder, and the learners'
    calls writing their parts into it."""

    tmp: Path
    learner: Any
    exploiters: list[Any]


def format_row(row: dict[str, Any]) -> str:
    """The terminal line of one iteration; fields of modes that did not run are left out."""
    parts = [f"iter {row['iteration']:3d}", f"acc {row['accuracy']:.3f}"]
    if row.get("accuracy_interval"):  # an open-ended task: the judge's win rate against v0
        low, high = row["accuracy_interval"]
        parts[1] = f"win-rate-vs-v0 {row['accuracy']:.3f} [{low:.2f}, {high:.2f}]"
    if row.get("games"):
        wr = row["win_rate_vs_previous"]
        parts += [
            f"win-rate-vs-prev {'  n/a' if wr is None else f'{wr:.3f}'}",
            f"elo {row['elo']:7.1f}",
            f"games {row['games']:5d}",
            f"games/s {row['games_per_s']:6.1f}",
        ]
    if row.get("episodes"):
        parts.append(f"episodes {row['episodes']:4d}")
        if row.get("win_rate_vs_previous") is not None:
            parts.append(f"win-rate-vs-prev {row['win_rate_vs_previous']:.3f}")
        parts.append(f"invalid {row['invalid_moves']}")
    for opponent in ("random", "expert"):
        if row.get(f"win_rate_vs_{opponent}") is not None:
            parts.append(f"vs-{opponent} {row[f'win_rate_vs_{opponent}']:.3f}")
    if row.get("truncated"):
        parts.append(f"truncated {row['truncated']}")
    if "failures" in row:
        parts.append(f"failures {row['failures']:4d}/{row['adversarial_prompts']}")
    if "skill_win_rates" in row:
        parts.append("skill " + " ".join(f"{k} {v:.2f}" for k, v in row["skill_win_rates"].items()))
    if "refinement_traces" in row:
        parts.append(f"refined-better {row['refinement_improved']:4d}/{row['refinement_traces']}")
    if "retention" in row:
        parts.append("retain " + " ".join(f"{k} {v:.3f} ({row['retention_vs_start'][k]:+.3f})" for k, v in row["retention"].items()))
    parts += [f"pairs {row['pairs']:4d}", f"distinct-2 {row['distinct_2']:.2f}"]
    if row.get("tokens_per_s") is not None:
        parts.append(f"tok/s {row['tokens_per_s']:.0f}")
    if row.get("admitted"):
        parts.append(f"admitted {row['admitted']}")
    for name, x in row.get("exploiters", {}).items():
        event = f" +{x['admitted']}" + (" (reset)" if x["reset"] else "") if x["admitted"] else ""
        parts.append(f"| {name} acc {x['accuracy']:.3f} wr-vs-main {x['win_rate_vs_main']:.2f}{event}")
    return "  ".join(parts)


def _finite(x: float) -> float | None:
    return None if math.isnan(x) else x


def near_driver(gpus: float = 0) -> Any:
    """Where the run's one-of-a-kind actors go (learners, league, judges, control): the driver's
    node, so losing a generator node never takes the run's state with it. An actor that needs
    GPUs is only steered there (soft), since the driver's node (a head node) may have none;
    Ray's soft affinity was seen to place CPU-only actors elsewhere, so those are pinned."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=gpus > 0)


def base_model(config: RunConfig, run: RunDir, show_progress: bool = True) -> Path:
    """The policy a run starts from: the recipe's checkpoint, a built-in pretrained model (converted
    into the cache on first use), or the tiny model built in the run directory."""
    path = config.model.path
    if path is not None:
        return resolve_model(str(path), show_progress) if is_builtin(path) else path
    return build_tiny_model(
        run.base_model, **config.model.tiny.model_dump(), max_position_embeddings=config.model.max_model_len or TINY_CONTEXT,
        seed=config.seed,
    )


def context_length(model: ModelConfig, checkpoint: Path) -> int:
    """`model.max_model_len`, or else the checkpoint's own context (its max_position_embeddings)."""
    if model.max_model_len is not None:
        return model.max_model_len
    from transformers import AutoConfig

    return int(AutoConfig.from_pretrained(checkpoint).max_position_embeddings)


def check_kv_cache(config: RunConfig, checkpoint: Path, max_model_len: int) -> None:
    """Refuse a context the generators' fixed KV cache cannot hold one sequence of, naming the
    two keys that fix it (vLLM's own error names its arguments, not the recipe's)."""
    per_token = kv_bytes_per_token(checkpoint, config.model.dtype)
    budget = config.generator.kv_cache_bytes
    if per_token is None or per_token * max_model_len <= budget:
        return
    mib = 2**20
    raise ConfigError(
        f"a {max_model_len}-token context (model.max_model_len, or the model's own) needs "
        f"{per_token * max_model_len / mib:.0f} MiB of KV cache per generator, more than generator.kv_cache_bytes "
        f"({budget / mib:.0f} MiB): set model.max_model_len to at most {budget // per_token}, or generator.kv_cache_bytes "
        f"to at least {per_token * max_model_len}"
    )


def league_settings(league: LeagueConfig) -> LeagueSettings:
    """The league section of a recipe as the league takes it (the exploiter counts are the driver's)."""
    r = league.roles
    rules = RoleRules(r.min_iterations, r.max_iterations, r.snapshot_win_rate, r.league_exploiter_reset)
    return LeagueSettings(**league.model_dump(exclude={"roles"}), roles=rules)


def judge_spec(judge: JudgeConfig, config: RunConfig | None = None) -> JudgeSpec:
    """The judge section of a recipe as the judge actor takes it (with `judge.kind: task`, the
    recipe's task too, from `config`)."""
    principles = [
        Principle(p.name, p.rule, p.weight, dict(p.options), str(p.model) if p.model else None, p.label)
        for p in judge.constitution
    ]
    reward_model = str(judge.reward_model) if judge.reward_model else None
    return JudgeSpec(
        kind=judge.kind, options=dict(judge.options), reward_model=reward_model, tie_margin=judge.tie_margin,
        constitution=principles, template=judge.template, pattern=judge.verdict_pattern,
        task=config.task if config is not None else None, task_seed=config.seed if config is not None else 0,
    )


def _adapter_slots(lora: LoRAOptions | None, league: bool, policy: bool) -> int:
    """vLLM's max_loras for an engine: the league's adapters in one batch when it answers for the
    snapshots as adapters, one for a learning agent's engine that takes its policy as an adapter."""
    if lora is None:
        return 0
    if league and lora.snapshots == "adapters":
        return lora.max_adapters
    return 1 if policy else 0
