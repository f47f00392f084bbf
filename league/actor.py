"""The league as a Ray actor: hosts `league.service.LeagueService`."""
from __future__ import annotations

from pathlib import Path

import ray

from league.league import LeagueSettings
from league.service import LeagueService


def league_actor(name: str, run_dir: Path, settings: LeagueSettings, seed: int, resume: bool = False):
    return ray.remote(LeagueService).options(name=name, num_cpus=0).remote(str(run_dir), settings, seed, resume)
