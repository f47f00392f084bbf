"""TensorBoard: event files under `RUN_DIR/tensorboard` (`tensorboard --logdir RUN_DIR/tensorboard`)."""
from __future__ import annotations

from pathlib import Path

import yaml

from trackers.base import SinkSettings


class TensorBoardSink:
    def __init__(self, settings: SinkSettings) -> None:
        from matplotlib.image import imread
        from torch.utils.tensorboard import SummaryWriter

        self._imread = imread
        # purge_step: a resumed run drops what a first run logged past its saved state, so the curve has one value per step
        self.writer = SummaryWriter(str(settings.run_dir / "tensorboard"), purge_step=settings.first_step or None)
        if not settings.first_step:
            self.writer.add_text("config", "```\n" + yaml.safe_dump(settings.config, sort_keys=False) + "```", 0)

    def log(self, step: int, values: dict[str, float]) -> None:
        for name, value in values.items():
            self.writer.add_scalar(name, value, step)
        self.writer.flush()

    def log_figures(self, step: int, pngs: dict[str, Path]) -> None:
        for name, path in pngs.items():
            self.writer.add_image(f"figures/{name}", self._imread(path)[..., :3], step, dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def open_sink(settings: SinkSettings) -> TensorBoardSink:
    return TensorBoardSink(settings)
