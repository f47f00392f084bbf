"""Experiment trackers (trackers/): every sink gets each final row once, at its iteration, across
a resume; the recipe; the report's figures. Read back offline with each tracker's own format."""
import json
from pathlib import Path

import matplotlib
import pytest
from readback import mlflow_run, tensorboard_scalars, wandb_history

from cluster.config import ConfigError, parse_config
from trackers import base
from trackers.base import SinkSettings, TrackerError, Trackers, scalars

matplotlib.use("Agg")
ALL = ["tensorboard", "wandb", "mlflow"]


def _rows(first: int, last: int) -> list[dict]:
    return [{"iteration": i, "accuracy": i / 10, "phase_s": {"play": 1.0 + i}, "bt_by_policy": {"current@v1": [1000.0 + i, 990.0, 1010.0]},
             "mode_collapse": i == 2, "elo": None, "judge": "verifier", "loss": float("nan")} for i in range(first, last + 1)]


def _settings(run_dir: Path) -> SinkSettings:
    return SinkSettings(run_dir, "run-a", "selfplay-tests", {"seed": 3, "dpo": {"beta": 0.1}}, wandb_mode="offline")


def test_scalars_flatten_a_row_into_named_series() -> None:
    row = _rows(2, 2)[0]
    assert scalars(row) == {"iteration": 2.0, "accuracy": 0.2, "phase_s/play": 3.0, "bt_by_policy/current_v1/0": 1002.0,
                            "bt_by_policy/current_v1/1": 990.0, "bt_by_policy/current_v1/2": 1010.0, "mode_collapse": 1.0}


def test_a_resumed_run_continues_its_tracker_runs_without_a_step_twice(tmp_path: Path) -> None:
    """Rows 0-2, a stop, then a resume handed rows 0-4 (what a resumed run's loop has): each
    tracker has every step once with its value, one run (ids kept in trackers.json), the
    recipe, and the figures logged at the end."""
    import matplotlib.pyplot as plt

    figures = tmp_path / "report"
    figures.mkdir()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    fig.savefig(figures / "held_out_metric.png")
    plt.close(fig)

    first = Trackers.open(ALL, _settings(tmp_path))
    first.log(_rows(0, 2))
    first.close("FAILED")
    ids = json.loads((tmp_path / "trackers.json").read_text())
    assert ids["logged_through"] == dict.fromkeys(ALL, 2) and set(ids["runs"]) == {"wandb", "mlflow"}
    again = Trackers.open(ALL, _settings(tmp_path))
    again.log(_rows(0, 4))
    again.log_figures(figures)
    again.close("FINISHED")
    assert json.loads((tmp_path / "trackers.json").read_text()) == {**ids, "logged_through": dict.fromkeys(ALL, 4)}

    expected = {i: i / 10 for i in range(5)}
    tb, images, texts = tensorboard_scalars(tmp_path)
    assert tb["accuracy"] == pytest.approx(expected) and tb["bt_by_policy/current_v1/0"][4] == 1004.0
    assert "loss" not in tb and "judge" not in tb  # not finite, not a number
    assert images == ["figures/held_out_metric"] and any("config" in t for t in texts)

    metrics, artifacts = mlflow_run(tmp_path, ids["runs"]["mlflow"])
    assert metrics["accuracy"] == {i: [pytest.approx(v)] for i, v in expected.items()}
    assert _mlflow_status(tmp_path, ids["runs"]["mlflow"]) == "FINISHED"  # reopened as RUNNING, ended as the run did
    assert metrics["phase_s/play"][3] == [4.0]
    assert "config.yaml" in artifacts and "figures/held_out_metric.png" in artifacts

    history, configs, run_ids = wandb_history(tmp_path)
    assert run_ids == {ids["runs"]["wandb"]}
    assert {step: items["accuracy"] for step, items in history.items()} == pytest.approx(expected)
    assert configs[0]["dpo"] == {"beta": 0.1} and configs[0]["seed"] == 3
    assert history[4]["figures/held_out_metric/_type"] == "image-file"


def _mlflow_status(run_dir: Path, run_id: str) -> str:
    from mlflow.tracking import MlflowClient

    return MlflowClient((run_dir / "mlruns").resolve().as_uri()).get_run(run_id).info.status


def test_a_sink_that_fails_to_open_closes_the_ones_opened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(base.SINKS, "mlflow", base.SinkKind("trackers.mlflow_sink", "mlflow-skinny", "no_such_module_here"))
    closed = []
    monkeypatch.setattr("trackers.tensorboard_sink.TensorBoardSink.close", lambda self, outcome: closed.append(outcome))
    with pytest.raises(TrackerError, match=r"pip install mlflow-skinny \(or pip install 'selfplay\[trackers\]'\)"):
        Trackers.open(["tensorboard", "mlflow"], _settings(tmp_path))
    assert closed == ["FAILED"]


def test_a_tracker_that_fails_mid_run_is_warned_about_and_given_its_rows_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow's server down for one call: the run goes on with a warning, TensorBoard keeps its
    rows, and MLflow gets the rows it missed, each once, on the next call."""
    trackers = Trackers.open(["tensorboard", "mlflow"], _settings(tmp_path))
    trackers.log(_rows(0, 1))
    real = trackers.sinks["mlflow"].log

    def down(step: int, values: dict) -> None:
        raise ConnectionError("the tracking server is down")

    monkeypatch.setattr(trackers.sinks["mlflow"], "log", down)
    with pytest.warns(RuntimeWarning, match=r"tracker mlflow failed \(ConnectionError: the tracking server is down\); its rows from iteration 2"):
        trackers.log(_rows(2, 2))
    assert trackers.logged == {"tensorboard": 2, "mlflow": 1}
    monkeypatch.setattr(trackers.sinks["mlflow"], "log", real)
    trackers.log(_rows(3, 3))
    tensorboard = trackers.sinks["tensorboard"]
    monkeypatch.setattr(tensorboard, "close", lambda outcome: down(0, {}))  # a sink failing as the run ends: a warning, the others closed
    with pytest.warns(RuntimeWarning, match=r"tracker tensorboard did not close \(ConnectionError"):
        trackers.close("FINISHED")
    assert _mlflow_status(tmp_path, trackers.settings.ids["mlflow"]) == "FINISHED"
    tensorboard.writer.close()
    metrics, _ = mlflow_run(tmp_path, trackers.settings.ids["mlflow"])
    assert metrics["accuracy"] == {i: [pytest.approx(i / 10)] for i in range(4)}
    assert tensorboard_scalars(tmp_path)[0]["accuracy"] == pytest.approx({i: i / 10 for i in range(4)})


def test_what_a_resume_cannot_use_is_refused_with_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "trackers.json").write_text('{"runs": {"mlflow": "abc", "mlflow_uri": "http://mlflow-a:5000"}')
    with pytest.raises(TrackerError, match="trackers.json is damaged .*; delete it to start new tracker runs"):
        Trackers.open(["mlflow"], _settings(tmp_path))
    (tmp_path / "trackers.json").write_text('{"runs": {"mlflow": "abc", "mlflow_uri": "http://mlflow-a:5000"}}')
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow-b:5000")
    with pytest.raises(TrackerError, match="MLflow run abc is on http://mlflow-a:5000, not http://mlflow-b:5000: set logging.mlflow_uri"):
        Trackers.open(["mlflow"], _settings(tmp_path))


def test_the_recipe_names_sinks_that_exist(tmp_path: Path) -> None:
    recipe = {"run_dir": str(tmp_path / "run")}
    assert parse_config({**recipe, "logging": {"sinks": ALL}}).logging.sinks == ALL
    with pytest.raises(ConfigError, match="unknown sink 'neptune'; known sinks: tensorboard, wandb, mlflow"):
        parse_config({**recipe, "logging": {"sinks": ["neptune"]}})
    with pytest.raises(ConfigError, match="named twice"):
        parse_config({**recipe, "logging": {"sinks": ["wandb", "wandb"]}})
