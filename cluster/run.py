"""Running a recipe: validate, prepare the run directory, start or join Ray, play, summarize."""
from __future__ import annotations

import os
from typing import Any

import ray

from cluster.config import RunConfig, with_run_dir
from cluster.orchestrator import Orchestrator
from cluster.run_dir import RunDir

# Quiet the engines and tokenizers in every Ray worker of a local cluster.
WORKER_ENV = {"VLLM_LOGGING_LEVEL": "ERROR", "TOKENIZERS_PARALLELISM": "false", "RAY_DEDUP_LOGS": "1"}


def run_self_play(config: RunConfig, overwrite: bool = False, show_progress: bool = True) -> dict[str, Any]:
    """The whole pipeline for one recipe; returns the summary also written to `summary.json`."""
    config = with_run_dir(config)
    run = RunDir.create(config, overwrite=overwrite)
    started_ray = connect(config)
    orchestrator = Orchestrator(config, run, show_progress=show_progress)
    try:
        orchestrator.start()
        return orchestrator.run_loop()
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
        ray.init(address=c.address, runtime_env={"env_vars": WORKER_ENV}, log_to_driver=c.actor_logs)
        return True
    ray.init(
        num_cpus=c.num_cpus or max(4, os.cpu_count() or 1),
        include_dashboard=c.dashboard,
        runtime_env={"env_vars": WORKER_ENV},
        log_to_driver=c.actor_logs,
        configure_logging=True,
        logging_level="warning",
    )
    return True
