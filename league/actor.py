"""The league as a Ray actor: hosts `league.service.LeagueService`."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import ray

from league.league import LeagueSettings
from league.service import LeagueService


def league_actor(name: str, run_dir: Path, settings: LeagueSettings, seed: int, resume: bool = False, scheduling_strategy: Any = None):
    """`scheduling_strategy`: where it goes (the orchestrator keeps the league near the driver)."""
    return ray.remote(LeagueService).options(name=name, num_cpus=0, scheduling_strategy=scheduling_strategy).remote(
        str(run_dir), settings, seed, resume
    )
