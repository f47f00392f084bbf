"""Writing a checkpoint directory so that a crash never leaves half of one under the real name."""
from __future__ import annotations

import json
import os
import shutil
import struct
from collections.abc import Callable
from pathlib import Path


def replace_dir_atomically(path: Path, write: Callable[[Path], object]) -> Path:
    """Run `write` on a temporary directory beside `path`, then rename it into place; the old
    directory (if any) stays whole until the new one is there."""
    tmp = fresh_beside(path)
    write(tmp)
    return move_into_place(tmp, path)


def fresh_beside(path: Path) -> Path:
    """An empty temporary directory's path beside `path`, for `move_into_place` (a write in two
    parts: the run's state asks the learner for its part first, and adds the rest later)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    return tmp


def move_into_place(tmp: Path, path: Path) -> Path:
    """`tmp` renamed to `path`; the old `path` stays whole until the new one is there."""
    path = Path(path)
    old = path.with_name(f".{path.name}.old-{os.getpid()}")
    if path.exists():
        path.rename(old)
    tmp.rename(path)
    shutil.rmtree(old, ignore_errors=True)
    return path


MAX_HEADER = 100_000_000  # bytes: the safetensors format's own bound on a header


class CheckpointError(ValueError):
    """A checkpoint directory that cannot be loaded; the message names the file."""


def read_checkpoint_config(path: Path) -> dict:
    """A Hugging Face checkpoint's config.json, with its weight files checked whole (their
    headers and sizes), so a broken checkpoint is refused when the recipe is read rather than
    as a traceback inside a Ray worker."""
    config = path / "config.json"
    try:
        data = json.loads(config.read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{str(config)!r} is not valid JSON ({err}); rewrite it with save_pretrained") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{str(config)!r} must hold a JSON object; rewrite it with save_pretrained")
    for weights in sorted(path.glob("*.safetensors")):
        _check_safetensors(weights)
    return data


def _check_safetensors(path: Path) -> None:
    """The file's header parses and its tensors end within the file (a truncated copy does not)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n > min(size - 8, MAX_HEADER):
                raise ValueError("the header runs past the end of the file")
            header = json.loads(f.read(n))
        end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    except (OSError, struct.error, ValueError, KeyError, TypeError, IndexError, AttributeError) as err:
        raise CheckpointError(f"{str(path)!r} is not a whole safetensors file ({err}); copy or save it again") from None
    if 8 + n + end > size:
        raise CheckpointError(
            f"{str(path)!r} is truncated ({size} bytes where its header needs {8 + n + end}); copy or save it again"
        )
