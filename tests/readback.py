"""What the experiment trackers wrote, read back offline the way each one's own tools would:
TensorBoard's event files, MLflow's file store, and wandb's offline `.wandb` files."""
from __future__ import annotations

import json
import struct
from collections import defaultdict
from pathlib import Path

WANDB_BLOCK = 32 * 1024  # a .wandb file is LevelDB's log format: 32 KiB blocks of framed chunks after a 7-byte header
WANDB_HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def tensorboard_scalars(run_dir: Path) -> tuple[dict[str, dict[int, float]], list[str], list[str]]:
    """Each scalar's value per step, the image tags and the text tags."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0, "images": 0, "tensors": 0}).Reload()
    tags = events.Tags()
    scalars = {tag: {e.step: e.value for e in events.Scalars(tag)} for tag in tags["scalars"]}
    return scalars, tags["images"], tags["tensors"]


def mlflow_run(run_dir: Path, run_id: str) -> tuple[dict[str, dict[int, list[float]]], list[str]]:
    """Each metric's values per step (all of them: a step logged twice shows twice) and the artifacts."""
    import os

    from mlflow.tracking import MlflowClient

    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient((run_dir / "mlruns").resolve().as_uri())
    metrics: dict[str, dict[int, list[float]]] = {}
    for key in client.get_run(run_id).data.metrics:
        per_step: dict[int, list[float]] = defaultdict(list)
        for m in client.get_metric_history(run_id, key):
            per_step[m.step].append(m.value)
        metrics[key] = dict(per_step)
    artifacts = [a.path for a in client.list_artifacts(run_id)] + [a.path for a in client.list_artifacts(run_id, "figures")]
    return metrics, artifacts


def _wandb_records(path: Path) -> list:
    from wandb.proto.wandb_internal_pb2 import Record

    data, records, pos, chunk = path.read_bytes(), [], WANDB_HEADER, b""
    assert data[:4] == b":W&B", path
    while pos + 7 <= len(data):
        left = WANDB_BLOCK - pos % WANDB_BLOCK
        if left < 7:  # a block's tail too short for a chunk header is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0:  # zeroed: the rest of the block is empty
            pos += left
            continue
        chunk += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (FULL, LAST):
            record = Record()
            record.ParseFromString(chunk)
            records.append(record)
            chunk = b""
    return records


def wandb_history(run_dir: Path) -> tuple[dict[int, dict[str, object]], list[dict[str, object]], set[str]]:
    """The offline runs' history (each step's values, merged across a resume's files), each
    file's config, and the run ids."""
    history: dict[int, dict[str, object]] = {}
    configs, ids = [], set()
    for path in sorted(run_dir.glob("wandb/offline-run-*/*.wandb")):
        for record in _wandb_records(path):
            kind = record.WhichOneof("record_type")
            if kind == "history":
                items = {(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in record.history.item}
                step = int(items.pop("_step"))
                assert step not in history, f"step {step} logged twice"
                history[step] = items
            elif kind == "run":
                ids.add(record.run.run_id)
                configs.append({u.key: json.loads(u.value_json) for u in record.run.config.update})
    return history, configs, ids
