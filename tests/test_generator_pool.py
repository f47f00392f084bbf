"""The elastic generator pool on real Ray + vLLM: sharding is invisible in the answers, new
generators join with the current weights, a killed generator is replaced and its shard
retried, a removed one is stopped; and a whole run loses no game to a killed generator."""
import threading
import time
from pathlib import Path

import pyarrow as pa
import pytest
import ray
from conftest import read_metrics, tiny_run

from actors.actor import generator_actor
from actors.generator import GREEDY, EngineSpec, GeneratorError, Sampling
from actors.pool import GeneratorPool, launch
from cluster.config import parse_config
from cluster.control import AutoscalePolicy, RunControl, desired_generators, generator_bundles
from cluster.run import run_self_play
from league.records import GAME_SCHEMA, read_tables
from learner.learner import DPOSettings, Learner

PROMPTS = [f"{a}+{b}=" for a in range(10) for b in range(3)]  # 30 prompts, uneven shards over 4


def test_pool_shards_joins_replaces_and_shrinks(ray_cluster, tiny_model: Path) -> None:
    spec = EngineSpec(str(tiny_model), dtype="float32")
    names: list[str] = []

    def start(serial: int):
        names.append(f"test-pool-{len(names)}")
        return generator_actor(names[-1], spec, "current", 0)

    single = generator_actor("test-pool-reference", spec, "current", 0)  # starts while the pool waits for its own
    hasty = launch(start, 1, sync_timeout_s=1e-4)  # used at the end
    sampling, seeds = Sampling(1.0, 1.0, 6), list(range(len(PROMPTS)))
    pool = GeneratorPool(start, size=2)
    expected = ray.get(single.generate.remote(PROMPTS, sampling, seeds))
    assert ray.get(pool.generate(PROMPTS, sampling, seeds)) == expected  # per-prompt seeds: shards change nothing

    learner = Learner(tiny_model, DPOSettings(learning_rate=5e-2, batch_size=4))
    pairs = pa.table({"prompt": PROMPTS[:4] * 4, "chosen": ["12", "34", "56", "78"] * 4, "rejected": ["9", "8", "7", "6"] * 4})
    learner.train(pairs)
    assert pool.load_weights(ray.put(learner.publish())) == 1
    trained = ray.get(pool.generate(PROMPTS, GREEDY))
    assert trained != ray.get(single.generate.remote(PROMPTS, GREEDY))

    pool.resize(4)  # the two new generators join with version 1 before they take work
    assert pool.size == 4 and [ray.get(a.serving.remote()) for a in pool.active] == [("current", 1)] * 4
    assert ray.get(pool.generate(PROMPTS, GREEDY)) == trained

    ray.kill(pool.active[1])  # a generator dies: its shard goes elsewhere and it is replaced, at version 1
    assert ray.get(pool.generate(PROMPTS, GREEDY)) == trained
    assert pool.replaced == 1 and pool.size == 4 and len(names) == 6  # 2 + 2 joined + 1 replacement, and the hasty one
    assert ray.get(pool.active[1].serving.remote()) == ("current", 1)

    leaving = pool.active[2:]
    pending = pool.submit("generate", {"prompts": PROMPTS, "seeds": None}, sampling=GREEDY)
    pool.resize(2)  # the two leaving hold shards of a request under way: drained, not stopped
    assert pool.size == 2 and len(pool.draining) == 2
    assert ray.get(pending.result()) == trained and not pool.draining  # stopped once their shards came back
    for actor in leaving:  # ray.kill is asynchronous: a call may still get through just after it
        with pytest.raises(ray.exceptions.RayActorError):
            for _ in range(120):
                ray.get(actor.serving.remote(), timeout=60)
                time.sleep(0.5)
    # two requests sent to a generator that has died: each retried, the generator replaced once
    dead = pool.active[0]
    ray.kill(dead)
    with pytest.raises(ray.exceptions.RayActorError):
        for _ in range(120):
            ray.get(dead.serving.remote(), timeout=60)
            time.sleep(0.5)
    first, second = (pool.submit("generate", {"prompts": PROMPTS, "seeds": None}, sampling=GREEDY) for _ in range(2))
    assert ray.get(first.result()) == trained == ray.get(second.result())
    assert pool.size == 2 and pool.replaced == 2 and not pool.draining

    hasty = hasty.pool()  # a sync that cannot finish in time fails loudly
    with pytest.raises(GeneratorError, match="did not finish"):
        hasty.load_weights(ray.put(learner.publish()))
    hasty.stop()
    pool.stop()
    ray.kill(single)


def test_a_run_loses_no_game_to_a_killed_generator(ray_cluster, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    games, iterations = 96, 4
    # one generator to start; autoscaling by queue depth (96 games > 64 prompts per generator) adds a second
    config = parse_config(tiny_run(run_dir, self_play={"iterations": iterations, "games_per_iteration": games},
                                   cluster={"autoscale": {"enabled": True, "max_generators": 2, "prompts_per_generator": 64}}))
    killed: list[str] = []

    def kill_one_generator_mid_run() -> None:
        while not (run_dir / "metrics.jsonl").is_file() or len(read_metrics(run_dir)) < 3:
            time.sleep(0.05)
        for actor in ray.util.list_named_actors(all_namespaces=False):
            if actor.endswith("-generator-current-1"):
                ray.kill(ray.get_actor(actor))
                killed.append(actor)

    killer = threading.Thread(target=kill_one_generator_mid_run, daemon=True)
    killer.start()
    summary = run_self_play(config, show_progress=False)
    killer.join(timeout=5)
    assert killed, "the generator was never found to kill"
    on_disk = read_tables(run_dir / "games", GAME_SCHEMA).to_pylist()
    assert len(on_disk) == iterations * games == summary["games"]
    assert len({g["game_id"] for g in on_disk}) == len(on_disk)
    assert all(g["response_a"] is not None for g in on_disk)
    rows = read_metrics(run_dir)
    assert [r["iteration"] for r in rows] == list(range(iterations + 1))
    assert rows[1]["generators"] == 1 and rows[-1]["generators"] == 2 and rows[-1]["generators_replaced"] == 1


def test_autoscaling_policy_and_control() -> None:
    policy = AutoscalePolicy(min_generators=1, max_generators=4, prompts_per_generator=1000)
    assert [desired_generators(d, policy) for d in (0, 1, 1000, 1001, 2500, 10**6)] == [1, 1, 1, 2, 3, 4]
    assert generator_bundles(3, 0, 1, {"generator_node": 1}) == [{"GPU": 1, "generator_node": 1}] * 3
    assert generator_bundles(2, 0, 0, {}) == []  # nothing to ask the autoscaler for
    # a tensor-parallel generator asks for its placement group: one GPU per rank (vLLM takes no more per bundle)
    assert generator_bundles(2, 1, 1, {"generator_node": 1}, ranks=2) == [{"GPU": 1, "CPU": 1, "generator_node": 1}, {"GPU": 1}] * 2
    control = RunControl()
    assert control.take() is None and control.set_generators(3) == 3 and control.take() == 3 and control.take() is None
    with pytest.raises(ValueError, match="at least one"):
        control.set_generators(0)
