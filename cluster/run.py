"""Running a recipe: validate, prepare the run directory, start or join Ray, play, summarize."""
from __future__ import annotations

import os
from typing import Any

import ray

from cluster.config import RunConfig, with_run_dir
from cluster.jobs import RECIPE_ENV
from cluster.orchestrator import Orchestrator
from cluster.resume import ResumePoint, rewind
from cluster.run_dir import RunDir

# Quiet the engines and tokenizers in every Ray worker of a local cluster.
WORKER_ENV = {"VLLM_LOGGING_LEVEL": "ERROR", "TOKENIZERS_PARALLELISM": "false", "RAY_DEDUP_LOGS": "1"}


def run_self_play(config: RunConfig, overwrite: bool = False, show_progress: bool = True) -> dict[str, Any]:
    """The whole pipeline for one recipe; returns the summary also written to `summary.json`."""
    config = with_run_dir(config)
    run = RunDir.create(config, overwrite=overwrite)
    return _play(config, run, show_progress, resume=False)


def resume_self_play(config: RunConfig, show_progress: bool = True) -> dict[str, Any]:
    """Go on with the run in `config.run_dir` from its last saved state (see cluster/resume.py);
    `config` is the run's own recipe, with more iterations or time if wanted."""
    if config.run_dir is not None and (config.run_dir / "config.yaml").is_file():
        ResumePoint.read(config.run_dir.resolve())  # refuse before touching the directory
    run = RunDir.reopen(config)
    return _play(config, run, show_progress, resume=True)


def _play(config: RunConfig, run: RunDir, show_progress: bool, resume: bool) -> dict[str, Any]:
    point = ResumePoint.read(run.root) if resume else None
    started_ray = connect(config)
    orchestrator = Orchestrator(config, run, show_progress=show_progress)
    try:
        if point is None:
            orchestrator.start()
            return orchestrator.run_loop()
        rows = rewind(run.root, point)
        orchestrator.start_resumed(point)
        return orchestrator.run_loop((point, rows))
    finally:
        orchestrator.stop()
        if started_ray:
            ray.shutdown()


def connect(config: RunConfig) -> bool:
    """Join the configured cluster, or start a local one; True when this call started it."""
    if ray.is_initialized():
        return False
    c = config.cluster
    if c.address:
        # A submitted job's driver already runs in the job's runtime env (working dir, env vars), which its actors inherit.
        in_job = RECIPE_ENV in os.environ
        ray.init(address=c.address, runtime_env=None if in_job else {"env_vars": WORKER_ENV}, log_to_driver=c.actor_logs)
        return True
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
