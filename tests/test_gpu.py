"""The GPU path, on GPUs only: skipped cleanly where CUDA is missing (the same code runs on CPU
over the gloo backend in test_weight_transfer.py and test_league_roles.py).

NCCL cannot put two ranks on one GPU, so a learner broadcasting to a generator needs two GPUs,
and a tensor-parallel generator two more; `bench/gpu.py` measures what one GPU can show.
"""
from pathlib import Path

import pytest
import ray
import torch

from actors.actor import generator_actor, stop_generator
from actors.generator import GREEDY, EngineSpec
from actors.pool import GeneratorPool
from learner.learner import DPOSettings, Learner
from learner.tiny_model import HALF_BILLION, build_tiny_model

GPUS = torch.cuda.device_count() if torch.cuda.is_available() else 0
PROMPTS = [f"{a}+{b}=" for a in range(10) for b in range(10)]


def needs_gpus(n: int):
    return pytest.mark.skipif(GPUS < n, reason=f"needs {n} CUDA GPUs, found {GPUS}")


@pytest.fixture(scope="module")
def half_billion(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("gpu") / "model", **HALF_BILLION)


def _synced_pool(model: Path, ranks: int) -> tuple[GeneratorPool, object]:
    """A learner on its own GPU and a pool of one generator taking its weights over nccl."""
    spec = EngineSpec(str(model), dtype="bfloat16", max_model_len=128, weight_transfer="nccl", tensor_parallel_size=ranks)
    pool = GeneratorPool(lambda n: generator_actor(f"gpu-generator-{ranks}-{n}", spec, "current", 0, num_gpus=1),
                         size=1, sync_timeout_s=300, transfer="nccl", ranks_per_generator=ranks)
    learner = ray.remote(Learner).options(num_gpus=1).remote(str(model), DPOSettings(learning_rate=1e-3, batch_size=8))
    return pool, learner


def _check_nccl_equals_object_store(pool: GeneratorPool, learner: object) -> None:
    """Train, send over nccl; then reload the same weights through the object store: the
    engine's weights do not change by a single bit, and neither do its greedy answers."""
    import pyarrow as pa

    generator = pool.active[0]
    before = ray.get(generator.generate.remote(PROMPTS, GREEDY))
    pairs = pa.table({"prompt": PROMPTS[:8], "chosen": ["12"] * 8, "rejected": ["9"] * 8})
    ray.get(learner.train.remote(pairs))
    assert pool.sync_from(learner) == 1
    over_nccl = ray.get(generator.weights_checksum.remote())
    answers = ray.get(generator.generate.remote(PROMPTS, GREEDY))
    ray.get(generator.load_weights.remote(learner.publish.remote()))
    assert ray.get(generator.weights_checksum.remote()) == over_nccl
    assert ray.get(generator.generate.remote(PROMPTS, GREEDY)) == answers
    assert answers != before
    print(f"\nnccl weight sync of a {HALF_BILLION['num_layers']}-layer 0.5B model: {pool.last_sync_seconds:.3f} s")


@needs_gpus(2)
def test_nccl_transfer_delivers_the_learners_weights(ray_cluster, half_billion: Path) -> None:
    pool, learner = _synced_pool(half_billion, ranks=1)
    _check_nccl_equals_object_store(pool, learner)
    pool.stop()
    ray.kill(learner)


@needs_gpus(3)
def test_tensor_parallel_generator_in_its_placement_group(ray_cluster, half_billion: Path) -> None:
    pool, learner = _synced_pool(half_billion, ranks=2)
    _check_nccl_equals_object_store(pool, learner)
    generator = pool.active[0]
    groups = [g for g in ray.util.placement_group_table().values() if g["state"] == "CREATED"]
    assert any(len(g["bundles"]) == 2 and all(b.get("GPU") == 1 for b in g["bundles"].values()) for g in groups)
    stop_generator(generator)
    pool.active.clear()
    ray.kill(learner)
    assert not [g for g in ray.util.placement_group_table().values() if g["state"] == "CREATED" and len(g["bundles"]) == 2]
