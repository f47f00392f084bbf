"""MLflow: one MLflow run per selfplay run, in the experiment named `logging.project`.

The tracking server is `logging.mlflow_uri`, else `MLFLOW_TRACKING_URI`, else a file store in
`RUN_DIR/mlruns` (`mlflow ui --backend-store-uri RUN_DIR/mlruns`), which MLflow 3 opens only
when `MLFLOW_ALLOW_FILE_STORE` is true: set here for that store alone.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import yaml

from trackers.base import SinkSettings

BATCH = 1000  # MLflow's most metrics per log_batch call


def tracking_uri(settings: SinkSettings) -> str:
    if settings.mlflow_uri or os.environ.get("MLFLOW_TRACKING_URI"):
        return settings.mlflow_uri or os.environ["MLFLOW_TRACKING_URI"]
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return (settings.run_dir / "mlruns").resolve().as_uri()


class MlflowSink:
    def __init__(self, settings: SinkSettings) -> None:
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri(settings))
        run_id = settings.ids.get("mlflow")
        if run_id is None:
            experiment = self.client.get_experiment_by_name(settings.project)
            experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(settings.project)
            run_id = self.client.create_run(experiment_id, run_name=settings.name).info.run_id
            self.client.log_text(run_id, yaml.safe_dump(settings.config, sort_keys=False), "config.yaml")
            settings.ids["mlflow"] = run_id
        else:
            self.client.update_run(run_id, status="RUNNING")
        self.run_id = run_id

    def log(self, step: int, values: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(name, value, now, step) for name, value in values.items()]
        for begin in range(0, len(metrics), BATCH):
            self.client.log_batch(self.run_id, metrics=metrics[begin:begin + BATCH])

    def log_figures(self, step: int, pngs: dict[str, Path]) -> None:
        for path in pngs.values():
            self.client.log_artifact(self.run_id, str(path), "figures")

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


def open_sink(settings: SinkSettings) -> MlflowSink:
    return MlflowSink(settings)
