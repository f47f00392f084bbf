"""Experiment trackers (`logging.sinks`): the run's rows, its recipe and its report's figures sent
to TensorBoard, Weights & Biases or MLflow, where people already compare their runs.

The driver owns the trackers (one process, not the actors): it opens them when the loop starts,
logs each metrics row as it is written (step = the iteration), logs the report's figures when the
run ends, and closes them. A resumed or restarted run reopens the same tracker runs: each sink's
run id is kept in `RUN_DIR/trackers.json`, so a curve continues instead of starting a second line. Each sink is one module here
whose package is an optional extra (`pip install 'selfplay[trackers]'`), imported only when a
recipe names it.
"""
from __future__ import annotations

import importlib
import importlib.util
import json
import math
import re
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
    first step it will be given, and the ids of tracker runs opened before (a resume's)."""

    run_dir: Path
    name: str
    project: str
    config: dict[str, Any]
    ids: dict[str, str] = field(default_factory=dict)
    first_step: int = 0  # the first iteration not logged yet (a resumed run's are past 0); `Trackers.open` sets it
    wandb_mode: WandbMode | None = None
    mlflow_uri: str | None = None

    @property
    def path(self) -> Path:
        return self.run_dir / IDS_FILE


class Sink(Protocol):
    def log(self, step: int, values: dict[str, float]) -> None: ...

    def log_figures(self, step: int, pngs: dict[str, Path]) -> None: ...

    def close(self) -> None: ...


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

    Only final rows are logged (those a resume keeps: up to the last saved state), and
    `RUN_DIR/trackers.json` says through which iteration, so no step reaches a tracker twice
    (wandb refuses to rewrite a step it has) and none is skipped after a crash."""

    def __init__(self, settings: SinkSettings, sinks: dict[str, Sink], logged_through: int = -1) -> None:
        self.settings, self.sinks, self.logged_through = settings, sinks, logged_through

    @classmethod
    def open(cls, names: list[str], settings: SinkSettings) -> Trackers:
        """Open each named sink, reusing the tracker runs `RUN_DIR/trackers.json` names (a sink
        adds its run's id to `settings.ids` when it opens one)."""
        saved = json.loads(settings.path.read_text()) if settings.path.exists() else {}
        settings.ids = {**saved.get("runs", {}), **settings.ids}
        settings.first_step = saved.get("logged_through", -1) + 1
        trackers = cls(settings, {}, saved.get("logged_through", -1))
        for name in names:
            missing = missing_packages([name])
            try:
                if missing:
                    raise TrackerError(f"logging.sinks names {name}, whose package is not installed: pip install {missing[0]}")
                trackers.sinks[name] = importlib.import_module(SINKS[name].module).open_sink(settings)
            except BaseException:
                trackers.close()  # those opened already
                raise
        trackers._save()
        return trackers

    def log(self, rows: list[Mapping[str, Any]]) -> None:
        """Final metrics rows, each at its iteration; rows logged before are left out."""
        for row in rows:
            step = int(row["iteration"])
            if not self.sinks or step <= self.logged_through:
                continue
            values = scalars({k: v for k, v in row.items() if k != "iteration"})
            for sink in self.sinks.values():
                sink.log(step, values)
            self.logged_through = step
            self._save()

    def log_figures(self, folder: Path) -> None:
        """The report's PNGs in `folder`, each under its figure's name, at the last step logged."""
        pngs = {p.stem: p for p in sorted(folder.glob("*.png"))}
        for sink in self.sinks.values():
            sink.log_figures(max(self.logged_through, 0), pngs)

    def close(self) -> None:
        for sink in self.sinks.values():
            sink.close()
        self.sinks = {}

    def _save(self) -> None:
        if self.sinks:
            self.settings.path.write_text(json.dumps({"runs": self.settings.ids, "logged_through": self.logged_through}, indent=1) + "\n")
