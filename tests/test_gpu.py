"""The GPU path, on GPUs only: skipped cleanly where CUDA is missing (the same code runs on CPU
over the gloo backend in test_weight_transfer.py and test_league_roles.py).

NCCL cannot put two ranks on one GPU, so a learner broadcasting to a generator needs two GPUs,
and a tensor-parallel generator two more; `bench/gpu.py` measures what one GPU can show.
"""
from pathlib import Path

import pytest
import ray
import torch

from actors.actor import generator_actor
from actors.generator import GREEDY, EngineSpec
from actors.pool import GeneratorPool
from learner.actor import learner_actor
from learner.learner import DPOSettings
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
    spec = EngineSpec(str(model), dtype="bfloat16", max_model_len=128, weight_transfer="nccl", tensor_parallel_size=ranks,
                      gpu_memory_utilization=0.5)  # the previous test's engine may still be letting go of its GPU
    pool = GeneratorPool(lambda n: generator_actor(f"gpu-generator-{ranks}-{n}", spec, "current", 0, num_gpus=1),
                         size=1, sync_timeout_s=300, start_timeout_s=300, transfer="nccl", ranks_per_generator=ranks)
    learner = learner_actor(f"gpu-learner-{ranks}", model, DPOSettings(learning_rate=1e-2, batch_size=8), 0, num_gpus=1)
    return pool, learner


def _check_nccl_equals_object_store(pool: GeneratorPool, learner: object) -> None:
    """Train, send over nccl; then reload the same weights through the object store: the
    engine's weights do not change by a single bit, and neither do its greedy tokens."""
    import pyarrow as pa

    generator = pool.active[0]
    start = ray.get(generator.weights_checksum.remote())
    pairs = pa.table({"prompt": PROMPTS[:8], "chosen": ["12"] * 8, "rejected": ["9"] * 8})
    ray.get(learner.train.remote(pairs))
    assert pool.sync_from(learner) == 1
    over_nccl = ray.get(generator.weights_checksum.remote())
    assert over_nccl != start  # new weights arrived
    tokens = ray.get(generator.generate_tokens.remote(PROMPTS, GREEDY))
    ray.get(generator.load_weights.remote(learner.publish.remote()))
    assert ray.get(generator.weights_checksum.remote()) == over_nccl
    assert ray.get(generator.generate_tokens.remote(PROMPTS, GREEDY)) == tokens
    print(f"\nnccl weight sync of the 0.5B model, {pool.ranks_per_generator} rank(s): {pool.last_sync_seconds:.3f} s")


@needs_gpus(2)
def test_nccl_transfer_delivers_the_learners_weights(ray_cluster, half_billion: Path) -> None:
    pool, learner = _synced_pool(half_billion, ranks=1)
    try:
        _check_nccl_equals_object_store(pool, learner)
    finally:
        pool.stop()
        ray.kill(learner)


@needs_gpus(3)
def test_tensor_parallel_generator_in_its_placement_group(ray_cluster, half_billion: Path) -> None:
    def tensor_parallel_groups() -> list:
        return [g for g in ray.util.placement_group_table().values() if g["state"] == "CREATED" and len(g["bundles"]) == 2]

    pool, learner = _synced_pool(half_billion, ranks=2)
    try:
        _check_nccl_equals_object_store(pool, learner)
        (group,) = tensor_parallel_groups()
        assert group["strategy"] == "STRICT_PACK" and all(b.get("GPU") == 1 for b in group["bundles"].values())
    finally:
        pool.stop()
        ray.kill(learner)
    assert not tensor_parallel_groups()
