"""A learner group of 2 CPU ranks (learner/shards.py: FSDP2 over gloo) trains one policy as one
learner does: after the same DPO steps on the same pairs its parameters equal a single learner's,
what it publishes is the whole gathered policy on every rank, and a group resumed from a saved
state equals one that never stopped."""
import multiprocessing as mp
import socket
from pathlib import Path

import pyarrow as pa
import pytest
import torch

from learner.learner import DPOSettings, Learner
from learner.shards import Shards

PAIRS = pa.table({
    "prompt": ["210+543=", "999+100=", "005+005=", "321+654=", "111+111=", "400+400=", "12+34="],
    "chosen": ["7530", "0001", "0100", "9750", "2220", "0080", "46"],
    "rejected": ["7531", "01", "0000", "975", "2221", "008", "47"],
})
# batches of 4 and 3 pairs, micro-batches of about two pairs: shares of 1 or 0 rows on a rank, gradients accumulated
SETTINGS = DPOSettings(learning_rate=1e-2, batch_size=4, epochs=2, micro_batch_tokens=40, ref_refresh_every=2)


def _free_address() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def _rank(rank: int, address: str, model: str, state: str, resume: bool, out: mp.Queue) -> None:
    """One rank: train twice (saving its state after the first), or resume that state and train once."""
    import torch.distributed as dist

    shards = Shards(rank, 2, address)
    if resume:
        learner = Learner(Path(state) / "policy", SETTINGS, shards=shards)
        learner.load_state(state)
    else:
        learner = Learner(model, SETTINGS, shards=shards)
        learner.keep_served()  # the asynchronous pipeline: the weights as served (v0), kept while the next version trains
        learner.train(PAIRS)
        learner.save_snapshot(Path(state).parent / "v0-snapshot", model, version=0)  # rank 0 writes the kept copy, no collective
        learner.save_state(state)
    stats = learner.train(PAIRS)
    update = learner.publish()
    out.put((rank, update.version, {k: v.numpy().copy() for k, v in update.weights.items()}, stats["loss"]))  # numpy: outlives the process
    dist.barrier()
    dist.destroy_process_group()


def _group(model: Path, state: Path, resume: bool) -> list[tuple]:
    ctx = mp.get_context("spawn")
    out, address = ctx.Queue(), _free_address()
    ranks = [ctx.Process(target=_rank, args=(r, address, str(model), str(state), resume, out)) for r in range(2)]
    for p in ranks:
        p.start()
    results = sorted((out.get(timeout=300) for _ in ranks), key=lambda r: r[0])
    for p in ranks:
        p.join(timeout=60)
        assert p.exitcode == 0
    return [(rank, version, {k: torch.from_numpy(v) for k, v in weights.items()}, loss) for rank, version, weights, loss in results]


def _assert_close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst < 1e-5, worst


def test_a_two_rank_group_equals_one_learner_and_resumes_exactly(tiny_model: Path, tmp_path: Path) -> None:
    single = Learner(tiny_model, SETTINGS)
    single.train(PAIRS)
    moved = {k: v.clone() for k, v in single.policy.state_dict().items()}
    expected_loss = single.train(PAIRS)["loss"]
    expected = single.publish()

    group = _group(tiny_model, tmp_path / "state", resume=False)
    (_, version0, weights0, loss0), (_, version1, weights1, _) = group
    assert version0 == version1 == expected.version == 2
    assert all(torch.equal(weights0[k], weights1[k]) for k in weights0)  # every rank publishes the whole gathered policy
    _assert_close(weights0, expected.weights)  # the single learner's, after the same steps
    assert loss0 == pytest.approx(expected_loss, abs=1e-5)  # the stats summed over the ranks' shares
    assert max((weights0[k] - moved[k]).abs().max().item() for k in moved) > 1e-3  # and the second call did train
    # the snapshot of the served version, taken after a later one trained: v0's weights exactly
    from transformers import AutoModelForCausalLM

    served = AutoModelForCausalLM.from_pretrained(tmp_path / "v0-snapshot").state_dict()
    start = AutoModelForCausalLM.from_pretrained(tiny_model).state_dict()
    assert served.keys() == start.keys() and all(torch.equal(served[k], start[k]) for k in start)

    resumed = _group(tiny_model, tmp_path / "state", resume=True)
    _assert_close(resumed[0][2], weights0)
    assert resumed[0][1] == 2

    with pytest.raises(ValueError, match=r"saved by a learner of 2 rank.s., not 1: .*resume with the recipe's learner.ranks as saved"):
        Learner(tmp_path / "state" / "policy", SETTINGS).load_state(tmp_path / "state")


def test_a_run_with_a_learner_group_trains_and_resumes(ray_cluster, tmp_path: Path) -> None:
    """`learner.ranks: 2` through `selfplay run`: two rank actors train the policy the generators
    serve (a new version each iteration), and a resumed run takes the group's state up."""
    import json

    from conftest import read_metrics, tiny_run

    from cluster.cli import main
    from cluster.config import parse_config
    from cluster.run import run_self_play

    run_dir = tmp_path / "run"
    recipe = tiny_run(run_dir, self_play={"iterations": 2, "games_per_iteration": 32}, learner={"ranks": 2},
                      league={"admission_threshold": 0.01, "min_admission_games": 1})  # the SFT warm-up runs on the group too
    run_self_play(parse_config(recipe), show_progress=False)
    rows = read_metrics(run_dir)
    assert [(r["version"], r["pairs"] > 0) for r in rows[1:]] == [(1, True), (2, True)]
    assert json.loads((run_dir / "state" / "learner" / "learner.json").read_text())["ranks"] == 2
    # resumed as an asynchronous run: the group trains one round behind play, and snapshots the
    # version its generators served (kept by the ranks) while it trains the next
    assert main(["run", "--resume", str(run_dir), "--iterations", "5", "--set", "self_play.max_staleness=1", "--quiet"]) == 0
    rows = read_metrics(run_dir)[1:]
    assert [r["version"] for r in rows] == [1, 2, 3, 4, 5]
    assert [r["played_by"] for r in rows[2:]] == [2, 2, 3]  # rounds 4 and 5 were played while the group trained on 3 and 4
    # round 5, played by v3 while the group trained v4, admitted v3: written from the ranks' kept copy
    admitted = {s["name"]: s for s in json.loads((run_dir / "league.json").read_text())["population"]}
    assert rows[4]["admitted"] == "v3" and (run_dir / admitted["v3"]["checkpoint"] / "config.json").is_file()
