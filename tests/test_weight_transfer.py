"""Weights over vLLM's weight-transfer engine (the GPU path's code, on CPU with the gloo backend):
the learner broadcasts to a pool's generators, which then answer exactly as generators that
loaded the same weights through the object store; the group is re-opened when the pool grows
or loses a generator; a transfer that cannot finish in time fails loudly. A tensor-parallel
generator reserves a placement group of one-GPU bundles and releases it when stopped."""
from pathlib import Path

import pyarrow as pa
import pytest
import ray
import torch
from ray.exceptions import RayTaskError

from actors.actor import generator_actor, stop_generator
from actors.generator import GREEDY, EngineSpec, GeneratorError
from actors.pool import GeneratorPool
from learner.learner import DPOSettings, Learner
from learner.weight_transfer import WeightTransferError

PROMPTS = [f"{a}+{b}=" for a in range(10) for b in range(2)] + ["hello ", "abc"]
PAIRS = pa.table({"prompt": PROMPTS[:4] * 4, "chosen": ["12", "34", "56", "78"] * 4, "rejected": ["9", "8", "7", "6"] * 4})


def _answers(pool: GeneratorPool) -> list[list[str]]:
    return [ray.get(a.generate.remote(PROMPTS, GREEDY)) for a in pool.active]


def test_gloo_transfer_equals_object_store_and_follows_the_pool(ray_cluster, tiny_model: Path) -> None:
    spec = EngineSpec(str(tiny_model), dtype="float32", weight_transfer="gloo")
    serial = iter(range(100))
    # the reference and the learner start while the pool waits for its engines
    reference = generator_actor("test-transfer-reference", EngineSpec(str(tiny_model), dtype="float32"), "current", 0)
    learner = ray.remote(Learner).options(num_cpus=0).remote(str(tiny_model), DPOSettings(learning_rate=5e-2, batch_size=4))
    pool = GeneratorPool(lambda _: generator_actor(f"test-transfer-{next(serial)}", spec, "current", 0), size=2,
                         sync_timeout_s=120, transfer="gloo")
    before = _answers(pool)[0]

    def trained_and_expected() -> list[str]:
        """One more DPO step; the answers of a generator that loaded its weights through the object store."""
        ray.get(learner.train.remote(PAIRS))
        ray.get(reference.load_weights.remote(learner.publish.remote()))
        return ray.get(reference.generate.remote(PROMPTS, GREEDY))

    with pytest.raises(WeightTransferError, match="no weight-transfer group"):
        ray.get(learner.send_weights.remote())
    expected = trained_and_expected()
    assert expected != before
    assert pool.sync_from(learner) == 1 and pool.version == 1
    assert _answers(pool) == [expected] * 2  # bit for bit what the object store delivers
    assert [ray.get(a.serving.remote()) for a in pool.active] == [("current", 1)] * 2
    first_group = list(pool.group)

    pool.resize(3)  # the newcomer takes the learner's weights once, then the group is opened again with it
    assert ray.get(pool.active[2].serving.remote()) == ("current", 1) and _answers(pool)[2] == expected
    expected = trained_and_expected()
    assert pool.sync_from(learner, "current") == 2
    assert pool.group == pool.active and pool.group[:2] == first_group
    assert _answers(pool) == [expected] * 3
    checksum = ray.get(reference.weights_checksum.remote())
    assert [ray.get(a.weights_checksum.remote()) for a in pool.active] == [checksum] * 3

    dead = pool.active[1]
    ray.kill(dead)  # dies between syncs: replaced before the group is opened, so the transfer still goes through
    expected = trained_and_expected()
    assert pool.sync_from(learner) == 3
    assert pool.replaced == 1 and dead not in pool.group and len(pool.group) == 3
    assert _answers(pool) == [expected] * 3

    # a generator started without the transfer is named before any rendezvous waits for it
    with pytest.raises(RayTaskError, match=r"generator 0 of the group was started with weight_transfer=None.*EngineSpec\(weight_transfer='gloo'"):
        ray.get(learner.open_transfer.remote("gloo", [reference], 1, 60))
    # each step on the learner's side has its deadline (a fast machine may get the setup reports in first) ...
    with pytest.raises(RayTaskError, match="(reporting their setup|joining the transfer group) on 3 generator.s. did not finish within 0.0001 s"):
        ray.get(learner.open_transfer.remote("gloo", pool.active, 1, 1e-4))
    # ... and the pool's deadline on the whole call catches a learner that does not answer at all
    busy = learner.sft_steps.remote([(PROMPTS, PROMPTS)] * 100, 1e-9)
    pool.sync_timeout_s = 1e-4
    with pytest.raises(GeneratorError, match="did not finish within"):
        pool.sync_from(learner)
    ray.get(busy)
    pool.stop()
    ray.kill(reference)
    ray.kill(learner)


def test_a_tied_models_head_reaches_a_running_engine_by_every_path(ray_cluster, tmp_path: Path) -> None:
    """A model whose output head is its input embeddings holds them as one parameter, and its
    checkpoints omit `lm_head.weight`; a reload that lacks it would put back the head the engine
    held before (actors/weight_sync.py). Over the transfer engine, from a checkpoint on disk and
    from the learner's shipped weights (which leave the shared head out), an engine answers as
    one started on the same weights."""
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from learner.learner import WeightUpdate
    from learner.tiny_model import build_tiny_model

    first = build_tiny_model(tmp_path / "a", hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128, tie_word_embeddings=True)
    model = AutoModelForCausalLM.from_pretrained(first, dtype=torch.float32)
    with torch.no_grad():  # other embeddings: with the old head, other answers
        model.get_input_embeddings().weight.copy_(torch.randn(model.get_input_embeddings().weight.shape, generator=torch.Generator().manual_seed(1)))
    second = tmp_path / "b"
    model.save_pretrained(second)
    AutoTokenizer.from_pretrained(first).save_pretrained(second)
    assert "lm_head.weight" not in load_file(str(second / "model.safetensors"))  # what makes the case
    learner = ray.remote(Learner).options(num_cpus=0).remote(str(first), DPOSettings())
    started = generator_actor("test-transfer-tied-b", EngineSpec(str(second), dtype="float32"), "current", 1)
    pool = GeneratorPool(lambda _: generator_actor("test-transfer-tied", EngineSpec(str(first), dtype="float32", weight_transfer="gloo"),
                                                   "current", 0), size=1, sync_timeout_s=120, transfer="gloo")
    expected, engine = ray.get(started.generate.remote(PROMPTS, GREEDY)), pool.active[0]
    as_first = _answers(pool)[0]
    ray.get(learner.reset_to.remote(str(second)))
    assert pool.sync_from(learner) == 1 and _answers(pool) == [expected]  # the transfer engine
    ray.get(engine.load_checkpoint.remote(str(first), "a", 0))
    assert _answers(pool) == [as_first]
    ray.get(engine.load_checkpoint.remote(str(second), "b", 1))
    assert _answers(pool) == [expected]  # a checkpoint on disk
    shipped = ray.get(learner.publish.remote())
    assert "lm_head.weight" not in shipped.weights and "model.embed_tokens.weight" in shipped.weights
    ray.get(engine.load_checkpoint.remote(str(first), "a", 0))
    ray.get(engine.load_weights.remote(WeightUpdate(2, shipped.weights)))
    assert _answers(pool) == [expected]  # the object store
    pool.stop()
    ray.kill(started)
    ray.kill(learner)


def test_tensor_parallel_generator_reserves_and_releases_its_placement_group(ray_cluster, tiny_model: Path) -> None:
    """vLLM's CPU backend cannot run tensor parallelism, and this machine has no GPU: the group
    stays pending, which is enough to see what it asks for and that stopping the generator frees it."""

    def groups() -> list[dict]:
        return [g for g in ray.util.placement_group_table().values() if g["state"] != "REMOVED"]

    assert not groups()
    spec = EngineSpec(str(tiny_model), dtype="float32", tensor_parallel_size=2)
    actor = generator_actor("test-tensor-parallel", spec, "current", 0, num_cpus=1, num_gpus=1, resources={"generator_node": 1})
    (group,) = groups()
    assert group["strategy"] == "STRICT_PACK" and group["state"] == "PENDING"
    assert list(group["bundles"].values()) == [{"GPU": 1.0, "CPU": 1.0, "generator_node": 1.0}, {"GPU": 1.0}]
    stop_generator(actor)
    assert not groups()


@pytest.mark.filterwarnings("ignore:Tensor .* exceeds buffer_size_bytes")  # what a tiny limit means
@pytest.mark.parametrize("limit", [0, 100, 1000, 10**9])
def test_engines_cut_the_same_buffers_the_learner_packs(limit: int) -> None:
    """The engine knows only names, shapes and dtypes; its buffers must match the learner's
    byte for byte, or every tensor after the first mismatch lands in the wrong place."""
    from vllm.distributed.weight_transfer.packed_tensor import pack_tensors

    from actors.gloo_transfer import buffers, unpack

    gen = torch.Generator().manual_seed(0)
    shapes = [[int(d) for d in torch.randint(1, 9, (int(torch.randint(1, 4, (1,), generator=gen)),), generator=gen)] for _ in range(30)]
    dtypes = [(torch.float32, torch.bfloat16, torch.int64)[i % 3] for i in range(30)]
    tensors = [(f"w{i}", torch.randn(s, generator=gen).to(d)) for i, (s, d) in enumerate(zip(shapes, dtypes))]
    sent, pairs = [], iter(tensors)
    while (chunk := pack_tensors(pairs, lambda item: item[1], limit)) is not None:
        sent.append((chunk.names, chunk.tensor_sizes, chunk.packed_tensor))
    cut = list(buffers([(n, list(t.shape), t.dtype) for n, t in tensors], limit))
    assert [(names, sizes) for names, _, _, sizes in cut] == [(names, sizes) for names, sizes, _ in sent]
    assert (len(sent) == len(tensors)) == (limit < 100)  # one tensor per buffer only when the limit is tiny
    received = [pair for (names, shapes, dtypes, sizes), (_, _, packed) in zip(cut, sent)
                for pair in unpack(packed, names, shapes, dtypes, sizes)]
    assert all(n == m and torch.equal(a, b) for (n, a), (m, b) in zip(received, tensors, strict=True))
