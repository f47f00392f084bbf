"""Writing a checkpoint directory so that a crash never leaves half of one under the real name."""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable


def replace_dir_atomically(path: Path, write: Callable[[Path], object]) -> Path:
    """Run `write` on a temporary directory beside `path`, then rename it into place; the old
    directory (if any) stays whole until the new one is there."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    write(tmp)
    old = path.with_name(f".{path.name}.old-{os.getpid()}")
    if path.exists():
        path.rename(old)
    tmp.rename(path)
    shutil.rmtree(old, ignore_errors=True)
    return path
