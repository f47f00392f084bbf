"""Experiment trackers (`logging.sinks`): the run's rows, its recipe and its report's figures sent
to TensorBoard, Weights & Biases or MLflow, where people already compare their runs.

The driver owns the trackers (one process, not the actors). It opens them before the run's
actors start (a tracker that cannot open stops the run before anything is spent), sends each
metrics row once it is final (step = the iteration), sends the report's figures when the run
ends, and closes them with the run's outcome. A resumed or restarted run reopens the same
tracker runs: each sink's run id, and the last iteration it has, are kept in
`RUN_DIR/trackers.json`, so a curve continues instead of starting a second line. A tracker that
fails while the run goes on is warned about and given the rows it missed on the next try; the
run itself goes on. Each sink is one module here whose package is an optional extra
(`pip install 'selfplay[trackers]'`), imported only when a recipe names it.
"""
from __future__ import annotations

import importlib
import importlib.util
import json
import math
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

IDS_FILE = "trackers.json"
WandbMode = Literal["online", "offline", "disabled"]


class TrackerError(RuntimeError):
    """A tracker could not be opened or written to."""


@dataclass(frozen=True)
class SinkKind:
    module: str  # the module here with `open_sink(settings) -> Sink`
    package: str  # what `pip install` takes
    imports: str  # the top-level module whose presence says the package is installed


SINKS: dict[str, SinkKind] = {
    "tensorboard": SinkKind("trackers.tensorboard_sink", "tensorboard", "tensorboard"),
    "wandb": SinkKind("trackers.wandb_sink", "wandb", "wandb"),
    "mlflow": SinkKind("trackers.mlflow_sink", "mlflow-skinny", "mlflow"),
}


def missing_packages(names: list[str]) -> list[str]:
    """The pip names of the sinks in `names` whose package is not installed here."""
    return [SINKS[n].package for n in names if importlib.util.find_spec(SINKS[n].imports) is None]


@dataclass
class SinkSettings:
    """What a sink needs to open its run: where the run writes, what to call it, the recipe, the
    ids of tracker runs opened before (a resume's; a sink adds its own when it opens one)."""

    run_dir: Path
    name: str
    project: str
    config: dict[str, Any]
    ids: dict[str, str] = field(default_factory=dict)
    wandb_mode: WandbMode | None = None
    mlflow_uri: str | None = None

    @property
    def path(self) -> Path:
        return self.run_dir / IDS_FILE


Outcome = Literal["FINISHED", "KILLED", "FAILED"]  # MLflow's names for how a run ended


class Sink(Protocol):
    """One tracker's run. `open_sink(settings, first_step)` in its module opens it; `first_step`
    is the first iteration it has not had (0 for a new run)."""

    def log(self, step: int, values: dict[str, float]) -> None: ...

    def log_figures(self, step: int, pngs: dict[str, Path]) -> None: ...

    def close(self, outcome: Outcome) -> None: ...


_UNSAFE = re.compile(r"[^\w\-./ ]")


def scalars(row: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """A metrics row as flat numeric series: nested fields joined with "/" (`phase_s/play`), lists
    by position (`win_rate_vs_previous_ci/0`), booleans as 0/1; text, None and non-finite values
    left out. Characters some trackers refuse in a name (`current@v3`) become "_"."""
    out: dict[str, float] = {}
    for key, value in row.items():
        name = _UNSAFE.sub("_", f"{prefix}{key}")
        if isinstance(value, Mapping):
            out.update(scalars(value, f"{name}/"))
        elif isinstance(value, list | tuple):
            out.update(scalars({str(i): v for i, v in enumerate(value)}, f"{name}/"))
        elif isinstance(value, bool | int | float) and math.isfinite(value):
            out[name] = float(value)
    return out


class Trackers:
    """The sinks a recipe names, opened together; each call goes to every one of them.

    Only final rows are given (those a resume keeps: up to the last saved state), and
    `RUN_DIR/trackers.json` says through which iteration each sink has them, so no step reaches
    a tracker twice (wandb refuses to rewrite a step it has) and none is skipped after a crash or
    a failed call."""

    def __init__(self, settings: SinkSettings, sinks: dict[str, Sink], logged: dict[str, int]) -> None:
        self.settings, self.sinks, self.logged = settings, sinks, logged
        self.pending: list[Mapping[str, Any]] = []  # rows some sink has not taken yet (it failed): sent again next time

    @classmethod
    def open(cls, names: list[str], settings: SinkSettings) -> Trackers:
        """Open each named sink on the tracker runs `RUN_DIR/trackers.json` names, if any."""
        saved = _read(settings.path)
        settings.ids = {**saved.get("runs", {}), **settings.ids}
        logged = saved.get("logged_through", {})
        trackers = cls(settings, {}, {name: logged.get(name, -1) for name in names})
        for name in names:
            missing = missing_packages([name])
            try:
                if missing:
                    raise TrackerError(f"logging.sinks names {name}, whose package is not installed where the run's driver runs: "
                                       f"pip install {missing[0]} (or pip install 'selfplay[trackers]')")
                module = importlib.import_module(SINKS[name].module)
                trackers.sinks[name] = module.open_sink(settings, trackers.logged[name] + 1)
            except BaseException:
                trackers.close("FAILED")  # those opened already
                raise
        trackers._save()
        return trackers

    def log(self, rows: list[Mapping[str, Any]]) -> None:
        """Final metrics rows, each at its iteration, to each sink that does not have it yet. A
        sink that fails is warned about and tried again with the same rows next time."""
        rows = self.pending + list(rows)
        series = {int(row["iteration"]): scalars({k: v for k, v in row.items() if k != "iteration"}) for row in rows}  # once, for every sink
        for name, sink in self.sinks.items():
            try:
                for step, values in series.items():
                    if step > self.logged[name]:
                        sink.log(step, values)
                        self.logged[name] = step
            except Exception as err:  # a tracker's server or disk: the run goes on, the rows wait
                warnings.warn(f"tracker {name} failed ({type(err).__name__}: {err}); its rows from iteration "
                              f"{self.logged[name] + 1} are sent again with the next ones", RuntimeWarning, stacklevel=2)
        behind = min(self.logged.values(), default=0)
        self.pending = [row for row in rows if int(row["iteration"]) > behind]
        self._save()

    def log_figures(self, folder: Path) -> None:
        """The report's PNGs in `folder`, each under its figure's name, at each sink's last step."""
        pngs = {p.stem: p for p in sorted(folder.glob("*.png"))}
        for name, sink in self.sinks.items():
            try:
                sink.log_figures(max(self.logged[name], 0), pngs)
            except Exception as err:
                warnings.warn(f"tracker {name} did not take the report's figures ({type(err).__name__}: {err})", RuntimeWarning, stacklevel=2)

    def close(self, outcome: Outcome) -> None:
        """End each tracker run as `outcome` (a resume reopens it)."""
        sinks, self.sinks = self.sinks, {}
        for name, sink in sinks.items():
            try:
                sink.close(outcome)
            except Exception as err:  # the run's own records are written already: a tracker's end is not worth failing it
                warnings.warn(f"tracker {name} did not close ({type(err).__name__}: {err})", RuntimeWarning, stacklevel=2)

    def _save(self) -> None:
        from league.records import replace_atomically

        state = {"runs": self.settings.ids, "logged_through": self.logged}
        replace_atomically(self.settings.path, lambda tmp: tmp.write_text(json.dumps(state, indent=1) + "\n"))


def _read(path: Path) -> dict[str, Any]:
    """`trackers.json`, or nothing for a run that has none yet."""
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise TrackerError(f"{path} is damaged ({err}); delete it to start new tracker runs for this run") from None
