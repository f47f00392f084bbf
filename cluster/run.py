"""Running a recipe: validate, join or start Ray, prepare the run directory, play, summarize."""
from __future__ import annotations

import importlib
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

import ray
from ray.exceptions import RayActorError

from cluster import probe, reaper
from cluster.config import ConfigError, RunConfig, with_run_dir
from cluster.jobs import RECIPE_ENV
from cluster.resume import ResumeError, ResumePoint, rewind
from cluster.run_dir import RunDir
from cluster.stopping import MAX_RESTARTS, ActorLost, Interrupted, StopRequest, dead_actor, how_to_go_on, last_error_line
from judge.pool import JudgeFailure

if TYPE_CHECKING:
    from cluster.orchestrator import Orchestrator

# What the driver needs to start the actors: torch and transformers, seconds of CPU (see `loading`).
ORCHESTRATOR = "cluster.orchestrator"

# Quiet the engines and tokenizers in every Ray worker of a local cluster.
WORKER_ENV = {"VLLM_LOGGING_LEVEL": "ERROR", "TOKENIZERS_PARALLELISM": "false", "RAY_DEDUP_LOGS": "1"}


def run_self_play(config: RunConfig, overwrite: bool = False, show_progress: bool = True) -> dict[str, Any]:
    """The whole pipeline for one recipe; returns the summary also written to `summary.json`.
    With `overwrite`, the run already in the directory is only dropped once the new one has started."""
    config = with_run_dir(config)
    RunDir.check(config, overwrite)  # before Ray starts, so a refusal is quick
    with cluster_for(config):
        run = RunDir.create(config, overwrite=overwrite)
        return _play(config, run, show_progress, None)


def resume_self_play(config: RunConfig, show_progress: bool = True) -> dict[str, Any]:
    """Go on with the run in `config.run_dir` from its last saved state (see cluster/resume.py);
    `config` is the run's own recipe, with more iterations or time if wanted. The whole saved
    state is checked before anything in the directory changes."""
    if config.run_dir is None:
        raise ResumeError("the recipe names no run_dir to resume")
    point = ResumePoint.read(config.run_dir.resolve())
    point.check(config.run_dir.resolve(), exploiters(config), pair_tags(config))
    if config.self_play.iterations <= point.iteration:
        raise ResumeError(
            f"{str(config.run_dir)!r} is already past iteration {point.iteration}; to go on, ask for more "
            f"iterations (--iterations {point.iteration + 1} or more)"
        )
    if config.self_play.iterations < point.played:
        raise ResumeError(
            f"{str(config.run_dir)!r} has played through iteration {point.played} (the asynchronous pipeline trains on it "
            f"after {point.iteration}); ask for at least that many (--iterations {point.played} or more)"
        )
    with cluster_for(config):
        run = RunDir.reopen(config)
        return _play(config, run, show_progress, point)


@contextmanager
def cluster_for(config: RunConfig) -> Iterator[None]:
    """Ray for this run: joined or started, checked to have what the recipe asks for, and shut
    down at the end when this run started it."""
    started = connect(config)
    try:
        if not config.cluster.address:
            check_resources(config)
        yield
    finally:
        if started:
            ray.shutdown()


def _play(config: RunConfig, run: RunDir, show_progress: bool, point: ResumePoint | None) -> dict[str, Any]:
    """Start (or resume) and play; an actor that dies is survived by going on from the saved
    state, up to MAX_RESTARTS times (see cluster/stopping.py)."""
    stop, restarts = StopRequest(), 0
    with stop.installed():
        try:
            while True:
                try:
                    return _play_once(config, run, show_progress, point, stop, restarts)
                except JudgeFailure as err:
                    raise JudgeFailure(f"{err}; {how_to_go_on(run.root)}") from None
                except RayActorError as err:
                    point = _restart_point(config, run, err, restarts)
                    restarts += 1
                    print(f"selfplay: {dead_actor(err)} died; the run goes on from its state after iteration "
                          f"{point.iteration} (restart {restarts} of at most {MAX_RESTARTS})", file=sys.stderr, flush=True)
        except Interrupted as sig:
            sig.run_dir = run.root
            raise


def _play_once(config: RunConfig, run: RunDir, show_progress: bool, point: ResumePoint | None, stop: StopRequest,
               restarts: int) -> dict[str, Any]:
    from cluster.orchestrator import Orchestrator

    orchestrator: Orchestrator | None = None
    started = False
    try:
        orchestrator = Orchestrator(config, run, show_progress=show_progress, generation=restarts)
        if point is None:
            orchestrator.start()
            resumed = None
        else:
            resumed = (point, rewind(run.root, point))
            orchestrator.start_resumed(point)
        started = True
        run.keep_new()
        return orchestrator.run_loop(resumed, stop)
    except RayActorError as err:
        if not started and restarts == 0:  # the command's own start: most likely the recipe or the cluster, not a fault
            raise ActorLost(f"{dead_actor(err)} could not start: {last_error_line(err)}") from None
        raise  # a fault mid-run, or while a restart starts (a node lost again): another restart, up to MAX_RESTARTS
    finally:
        if orchestrator is not None:
            orchestrator.stop()
        if not started:
            run.restore_old()


def pair_tags(config: RunConfig) -> list[str]:
    """The tags of the recipe's games' pair files (pairs/round-N-<tag>.parquet), which a resume
    reads back for the rounds played but not yet trained on."""
    from games.base import registry

    return [registry()[mode].tag for mode in dict.fromkeys(config.self_play.modes)]


def exploiters(config: RunConfig) -> list[str]:
    """The league roles' exploiters whose learner states a resume takes up."""
    return list(config.league.roles.exploiters()) if config.league.matchmaking == "alphastar" else []


def _restart_point(config: RunConfig, run: RunDir, err: RayActorError, restarts: int) -> ResumePoint:
    """Where the run goes on after `err`, or ActorLost saying how to go on by hand."""
    actor = dead_actor(err)
    if restarts >= MAX_RESTARTS:
        raise ActorLost(f"{actor} died again after {restarts} restarts; find why in its log, then go on "
                        f"with: selfplay run --resume {run.root}") from None
    try:
        point = ResumePoint.read(run.root)
        point.check(run.root, exploiters(config), pair_tags(config))
    except ResumeError:
        raise ActorLost(f"{actor} died before the run saved a state to go on from; start the run "
                        "again (with --overwrite)") from None
    return point


def check_resources(config: RunConfig) -> None:
    """A local cluster has what it has: asking it for GPUs it lacks would wait forever."""
    wanted = {
        "generator.num_gpus": config.generator.num_gpus,
        "cluster.num_learner_gpus": config.cluster.num_learner_gpus,
        "judge.num_gpus": config.judge.num_gpus,
    }
    asked = {key: n for key, n in wanted.items() if n > 0}
    have = ray.cluster_resources().get("GPU", 0)
    if asked and have == 0:
        keys = ", ".join(f"{k}: {v:g}" for k, v in asked.items())
        raise ConfigError(f"this machine's Ray cluster has no GPU, and the recipe asks for GPUs ({keys}); set them to 0, "
                          "or join a cluster with GPUs through cluster.address")


def check_address(address: str) -> None:
    """Fail within seconds on an address where nothing answers, rather than hang in ray.init."""
    if address == "auto" or ("://" in address and not address.startswith("ray://")):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return
    why = probe.tcp(host.strip("[]"), int(port))
    if why is not None:
        raise ConfigError(
            f"cluster.address {address!r}: nothing answers there ({why}); start the cluster (ray start --head) or fix "
            "the address, or leave cluster.address out to run on this machine"
        )


def connect(config: RunConfig) -> bool:
    """Join the configured cluster, or start a local one; True when this call started it."""
    c = config.cluster
    if c.address:
        check_address(c.address)
    if ray.is_initialized():
        return False
    if c.address:
        # A submitted job's driver already runs in the job's runtime env (working dir, env vars), which its actors inherit.
        in_job = RECIPE_ENV in os.environ
        # torch before connecting: a job's driver that first loaded it once connected died in oneMKL ("Cannot load libtorch_cpu.so")
        importlib.import_module(ORCHESTRATOR)
        ray.init(address=c.address, runtime_env=None if in_job else {"env_vars": WORKER_ENV}, log_to_driver=c.actor_logs)
        return True
    reaper.start_for(os.getpid())  # the local cluster's processes end with this driver, even a killed one
    with loading(ORCHESTRATOR):
        ray.init(
            address="local",  # a new cluster, even where `ray start` left one running
            num_cpus=c.num_cpus or max(4, os.cpu_count() or 1),
            include_dashboard=c.dashboard,
            runtime_env={"env_vars": WORKER_ENV},
            log_to_driver=c.actor_logs,
            configure_logging=True,
            logging_level="warning",
        )
    return True


@contextmanager
def loading(module: str) -> Iterator[None]:
    """`module` imported in a thread meanwhile: a local Ray start is mostly this process waiting
    for Ray's own to come up, which is when the driver's torch and transformers can load (about
    4 s of one core on 2 cores). An import that fails here is left to fail again where it is used."""
    def load() -> None:
        with suppress(Exception):
            importlib.import_module(module)

    thread = threading.Thread(target=load, name=f"import {module}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join()
