"""Weights & Biases: one wandb run per selfplay run, its files under `RUN_DIR/wandb`.

`logging.wandb_mode` (online, offline, disabled) is passed on; left unset, wandb decides as it
always does (`WANDB_MODE`, then whether you are logged in). An offline run is uploaded later with
`wandb sync RUN_DIR/wandb/offline-run-*`: a resumed run leaves one folder per start under the
same run id, which wandb 0.31's `sync` uploads one after another in order of start time.
"""
from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from trackers.base import Outcome, SinkSettings


class WandbSink:
    """The rows as wandb history at step = iteration, the recipe as the run's config, the
    report's figures as images."""

    def __init__(self, settings: SinkSettings, first_step: int) -> None:
        import wandb

        self._wandb = wandb
        run_id = settings.ids.get("wandb") or uuid.uuid4().hex[:8]
        self.run: Any = wandb.init(
            project=settings.project, name=settings.name, id=run_id, resume="allow", dir=str(settings.run_dir), config=settings.config,
            mode=settings.wandb_mode, reinit="create_new", settings=wandb.Settings(console="off", silent=True),
        )
        settings.ids["wandb"] = run_id

    def log(self, step: int, values: dict[str, float]) -> None:
        self.run.log(values, step=step)

    def log_figures(self, step: int, pngs: dict[str, Path]) -> None:
        self.run.log({f"figures/{name}": self._wandb.Image(str(path)) for name, path in pngs.items()}, step=step)

    def close(self, outcome: Outcome) -> None:
        self.run.finish(exit_code=0 if outcome == "FINISHED" else 1)


def open_sink(settings: SinkSettings, first_step: int) -> WandbSink:
    return WandbSink(settings, first_step)
