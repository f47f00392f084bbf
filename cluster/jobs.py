"""Ray jobs: a recipe submitted to a cluster, then followed, stopped or scaled from anywhere.

`submit` validates the recipe here (a bad one never reaches the cluster), ships the project
directory as the job's working directory (without `.venv`, run directories or caches) and
the resolved recipe in the job's environment; on the cluster `python -m cluster.jobs` runs it
as `selfplay run` would, joined to that cluster. The run directory is a path on the cluster:
`~/selfplay-runs/<job id>` of the node the driver runs on, unless an absolute one is given.

Ray 2.60 clusters started with token authentication refuse requests without the token; the
job client sends it when `RAY_AUTH_MODE=token`, which is turned on here when a token is at
hand (`RAY_AUTH_TOKEN`, `RAY_AUTH_TOKEN_PATH` or `~/.ray/auth_token`) and the user has not
chosen a mode.
"""
from __future__ import annotations

import json
import os
import secrets
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from cluster import probe
from cluster.config import RunConfig, parse_config

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RECIPE_ENV = "SELFPLAY_RECIPE"
RUNS_ON_CLUSTER = "~/selfplay-runs"
# What the working directory leaves behind: environments, runs, caches, version control.
EXCLUDES = [".venv", "venv", "runs", ".git", "**/__pycache__", ".pytest_cache", "*.egg-info", ".ruff_cache"]
JOB_ENV = {"PYTHONUNBUFFERED": "1"}  # the job's log shows each line as it is printed
TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


class JobError(RuntimeError):
    """A job request the cluster refused or that cannot be made as asked; the message says why."""


def use_token_auth() -> None:
    if "RAY_AUTH_MODE" in os.environ:
        return
    if os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH") or (Path.home() / ".ray" / "auth_token").is_file():
        os.environ["RAY_AUTH_MODE"] = "token"


def client(address: str | None):
    """A job client for the dashboard at `address` (default: RAY_API_SERVER_ADDRESS, RAY_ADDRESS, then http://127.0.0.1:8265)."""
    use_token_auth()
    where = dashboard_address(address)
    if where is not None:
        reachable(where)
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    try:
        jobs = JobSubmissionClient(address)
    except AuthenticationError:
        raise JobError(
            f"the Ray dashboard at {where} wants its token: put the cluster's token in ~/.ray/auth_token, or set "
            "RAY_AUTH_TOKEN (or RAY_AUTH_TOKEN_PATH); `ray get-auth-token` prints it on the head node"
        ) from None
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise JobError(f"cannot reach the Ray dashboard at {where or 'this machine'}: {err}; pass --address http://HEAD:8265") from None
    found = getattr(jobs, "_address", where)  # what Ray resolved the address to
    if found not in _ANNOUNCED:  # another user's cluster may answer on this machine: say whose this is
        print(f"selfplay: the Ray cluster at {found}", file=sys.stderr)
        _ANNOUNCED.add(found)
    return jobs


_ANNOUNCED: set[str] = set()


def dashboard_address(address: str | None) -> str | None:
    """The address asked for, by flag or environment; None leaves it to Ray (the local cluster's dashboard)."""
    return address or os.environ.get("RAY_API_SERVER_ADDRESS") or os.environ.get("RAY_ADDRESS")


def reachable(where: str) -> None:
    """Fail within seconds where nothing answers, rather than wait on the job client's own timeouts."""
    if not where.startswith(("http://", "https://")):
        return
    why = probe.http_get(f"{where.rstrip('/')}/api/version")
    if why is not None:
        raise JobError(f"the Ray dashboard at {where} does not answer ({why}); start the cluster or pass --address http://HEAD:8265")


def job_recipe(config: RunConfig, job_id: str) -> RunConfig:
    """The recipe as the job runs it: joined to the cluster it runs on, writing to a path there."""
    run_dir = config.run_dir
    if run_dir is not None and not run_dir.is_absolute() and not str(run_dir).startswith("~"):
        raise JobError(
            f"--run-dir {str(run_dir)!r} is relative; on the cluster it would land in the job's temporary working "
            f"directory and be lost. Give an absolute path on the cluster (shared storage), or leave it out for {RUNS_ON_CLUSTER}/<job id>"
        )
    cluster = config.cluster.model_copy(update={"address": "auto"})
    return config.model_copy(update={"run_dir": run_dir or Path(RUNS_ON_CLUSTER) / job_id, "cluster": cluster})


def shipped(config: RunConfig) -> dict[str, Any]:
    """The recipe as it travels: paths inside the project (data files, a chat template, a model
    checkpoint), which the recipe check made absolute here, made relative to it again, since the
    job's working directory is this project unpacked elsewhere. Other paths must be where the
    cluster's nodes see them (shared storage)."""
    root = str(PROJECT_ROOT) + os.sep

    def portable(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: portable(v) for k, v in node.items()}
        if isinstance(node, list):
            return [portable(v) for v in node]
        return node[len(root):] if isinstance(node, str) and node.startswith(root) else node

    return portable(config.model_dump(mode="json"))


def submit(config: RunConfig, address: str | None = None, job_id: str | None = None) -> str:
    """Submit the recipe as a Ray job; returns its id."""
    job_id = job_id or time.strftime("selfplay-%Y%m%d-%H%M%S-") + secrets.token_hex(3)
    recipe = job_recipe(config, job_id)
    jobs = client(address)  # before Ray is imported by anything else: it reads RAY_AUTH_MODE once
    from cluster.run import WORKER_ENV

    runtime_env = {
        "working_dir": str(PROJECT_ROOT),
        "excludes": EXCLUDES,
        "env_vars": {RECIPE_ENV: yaml.safe_dump(shipped(recipe), sort_keys=False), **WORKER_ENV, **JOB_ENV},
    }
    metadata = {"run_dir": str(recipe.run_dir), "selfplay": "1"}
    try:
        return jobs.submit_job(entrypoint="python -m cluster.jobs", submission_id=job_id, runtime_env=runtime_env, metadata=metadata)
    except RuntimeError as err:
        raise JobError(f"the cluster refused the job: {err}") from None


def status(job_id: str, address: str | None = None) -> dict[str, Any]:
    """The job's state, message, run directory and times (only for a job this project submitted)."""
    return _summary(job_id, _own(job_id, address))


def _own(job_id: str, address: str | None) -> Any:
    """The job's info, refused when this project did not submit it: `selfplay stop` must never stop another user's job."""
    info = _call(lambda c: c.get_job_info(job_id), address, job_id)
    if "selfplay" not in (info.metadata or {}):  # "1" for a run, "scale" for a scaling request
        raise JobError(f"job {job_id!r} was not submitted by selfplay; use `ray job` for it")
    return info


def _summary(job_id: str, info: Any) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "status": str(info.status.value if hasattr(info.status, "value") else info.status),
        "message": info.message,
        "run_dir": (info.metadata or {}).get("run_dir"),
        "start_time": info.start_time,
        "end_time": info.end_time,
    }


def list_jobs(address: str | None = None) -> list[dict[str, Any]]:
    """This project's jobs on the cluster, oldest first."""
    jobs = _call(lambda c: c.list_jobs(), address, None)
    mine = [j for j in jobs if (j.metadata or {}).get("selfplay") == "1" and j.submission_id]
    return [_summary(j.submission_id, j) for j in sorted(mine, key=lambda j: j.start_time or 0)]


def logs(job_id: str, address: str | None = None) -> str:
    _own(job_id, address)
    return _call(lambda c: c.get_job_logs(job_id), address, job_id)


def follow(job_id: str, address: str | None = None, out=sys.stdout) -> str:
    """Print the job's logs as they come until it ends; returns its final status."""
    import asyncio

    _own(job_id, address)

    async def tail() -> None:
        async for chunk in client(address).tail_job_logs(job_id):
            out.write(chunk)
            out.flush()

    asyncio.run(tail())
    return wait(job_id, address, timeout_s=60)


def wait(job_id: str, address: str | None = None, timeout_s: float = 3600, poll_s: float = 2) -> str:
    """Block until the job ends; returns SUCCEEDED, FAILED or STOPPED."""
    deadline = time.monotonic() + timeout_s
    while True:
        state = status(job_id, address)["status"]
        if state in TERMINAL:
            return state
        if time.monotonic() > deadline:
            raise JobError(f"job {job_id} still {state} after {timeout_s:g} s")
        time.sleep(poll_s)


def stop(job_id: str, address: str | None = None) -> bool:
    """Ask the cluster to stop the job (its actors go with its driver); False if it had already ended."""
    _own(job_id, address)
    return _call(lambda c: c.stop_job(job_id), address, job_id)


def scale(job_id: str, generators: int, address: str | None = None) -> str:
    """Ask the running job's run for `generators` current-policy generators, through a short Ray
    job of its own on the cluster (`python -m cluster.control`); returns what it said."""
    if generators < 1:
        raise JobError(f"--generators must be at least 1 (got {generators})")
    info = status(job_id, address)
    if info["status"] != "RUNNING":
        raise JobError(f"job {job_id} is {info['status']}; only a running job can be scaled")
    run = Path(str(info["run_dir"])).name
    runtime_env = {"working_dir": str(PROJECT_ROOT), "excludes": EXCLUDES}
    request = _call(lambda c: c.submit_job(
        entrypoint=f"python -m cluster.control {shlex.quote(run)} {generators}", runtime_env=runtime_env,
        metadata={"selfplay": "scale", "job": job_id},
    ), address, None)
    state = wait(request, address, timeout_s=300, poll_s=1)
    said = logs(request, address).strip().splitlines()
    if state != "SUCCEEDED":
        raise JobError(f"scaling {job_id} failed: {said[-1] if said else state}")
    return said[-1] if said else "asked"


def _call(request, address: str | None, job_id: str | None):
    c = client(address)
    try:
        return request(c)
    except RuntimeError as err:
        if job_id is not None and "does not exist" in str(err):
            raise JobError(f"no job {job_id!r} on this cluster; `selfplay status` lists them") from None
        raise JobError(str(err)) from None


def run_job() -> int:
    """The job's entrypoint on the cluster: the recipe from the environment, run as `selfplay run` runs it."""
    from cluster.run import run_self_play

    text = os.environ.get(RECIPE_ENV)
    if not text:
        print(f"selfplay job: no recipe in ${RECIPE_ENV}; submit with `selfplay submit`", file=sys.stderr)
        return 2
    config = parse_config(yaml.safe_load(text), source=f"${RECIPE_ENV}")
    config = config.model_copy(update={"run_dir": Path(str(config.run_dir)).expanduser()})
    print(f"selfplay job: writing the run to {config.run_dir}", flush=True)
    summary = run_self_play(config, show_progress=True)
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(run_job())
