"""MLflow: one MLflow run per selfplay run, in the experiment named `logging.project`.

The tracking server is `logging.mlflow_uri`, else `MLFLOW_TRACKING_URI`, else a file store in
`RUN_DIR/mlruns` (`mlflow ui --backend-store-uri RUN_DIR/mlruns`), which MLflow 3 opens only
when `MLFLOW_ALLOW_FILE_STORE` is true: set for the driver's process when that store is used. A
server's address is kept in `trackers.json`, so a resume finds its run there.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import yaml

from trackers.base import Outcome, SinkSettings, TrackerError

BATCH = 1000  # MLflow's most metrics per log_batch call


def tracking_uri(settings: SinkSettings) -> str:
    """Where the run is tracked: the recipe's or the environment's server, else the server a
    resumed run was tracked on, else the run's own file store."""
    asked = settings.mlflow_uri or os.environ.get("MLFLOW_TRACKING_URI")
    saved = settings.ids.get("mlflow_uri")
    if asked and saved and asked != saved:
        raise TrackerError(f"this run's MLflow run {settings.ids.get('mlflow')} is on {saved}, not {asked}: "
                           f"set logging.mlflow_uri: {saved} (or delete trackers.json to start a new MLflow run)")
    if asked or saved:
        settings.ids["mlflow_uri"] = asked or saved or ""
        return settings.ids["mlflow_uri"]
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return (settings.run_dir / "mlruns").resolve().as_uri()


class MlflowSink:
    """Metrics at step = iteration, the recipe as `config.yaml`, the report's figures under `figures/`."""

    def __init__(self, settings: SinkSettings, first_step: int) -> None:
        from mlflow.tracking import MlflowClient

        self.store = tracking_uri(settings)
        self.client = MlflowClient(self.store)
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
        artifacts = self.client.get_run(self.run_id).info.artifact_uri
        if self.store.startswith("file:") and not artifacts.startswith(self.store):
            # MLflow's file store keeps absolute artifact paths: a moved run's point at where it was
            raise TrackerError(f"the run's MLflow artifacts are kept at {artifacts}, outside its file store {self.store} (the run "
                               "directory was moved): the figures are in RUN_DIR/report instead")
        for path in pngs.values():
            self.client.log_artifact(self.run_id, str(path), "figures")

    def close(self, outcome: Outcome) -> None:
        self.client.set_terminated(self.run_id, status=outcome)


def open_sink(settings: SinkSettings, first_step: int) -> MlflowSink:
    return MlflowSink(settings, first_step)
