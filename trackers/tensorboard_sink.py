"""TensorBoard: event files under `RUN_DIR/tensorboard` (`tensorboard --logdir RUN_DIR/tensorboard`)."""
from __future__ import annotations

from pathlib import Path

import yaml

from trackers.base import Outcome, SinkSettings


class TensorBoardSink:
    """Scalars per iteration, the recipe as a text at step 0, the report's figures as images."""

    def __init__(self, settings: SinkSettings, first_step: int) -> None:
        from matplotlib.image import imread
        from torch.utils.tensorboard import SummaryWriter

        self._imread = imread
        # purge_step: events a run wrote past what trackers.json says it had (a crash between the two) are dropped
        self.writer = SummaryWriter(str(settings.run_dir / "tensorboard"), purge_step=first_step or None)
        if not first_step:
            self.writer.add_text("config", "```\n" + yaml.safe_dump(settings.config, sort_keys=False) + "```", 0)

    def log(self, step: int, values: dict[str, float]) -> None:
        for name, value in values.items():
            self.writer.add_scalar(name, value, step)
        self.writer.flush()

    def log_figures(self, step: int, pngs: dict[str, Path]) -> None:
        for name, path in pngs.items():
            self.writer.add_image(f"figures/{name}", self._imread(path)[..., :3], step, dataformats="HWC")
        self.writer.flush()

    def close(self, outcome: Outcome) -> None:
        """TensorBoard has no notion of a run's outcome: the files are closed."""
        self.writer.close()


def open_sink(settings: SinkSettings, first_step: int) -> TensorBoardSink:
    return TensorBoardSink(settings, first_step)
