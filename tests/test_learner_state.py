"""A learner saved and taken up again goes on exactly as one that never stopped."""
from pathlib import Path

import pyarrow as pa
import pytest
import torch

from learner.learner import DPOSettings, Learner

PAIRS = pa.table({
    "prompt": ["210+543=", "999+100=", "005+005=", "321+654=", "111+111="],
    "chosen": ["7530", "0001", "0100", "9750", "2220"],
    "rejected": ["7531", "01", "0000", "975", "2221"],
})


def test_resumed_learner_matches_an_uninterrupted_one(tiny_model: Path, tmp_path: Path) -> None:
    settings = DPOSettings(batch_size=2, epochs=1, ref_refresh_every=2, learning_rate=1e-3)
    steady = Learner(tiny_model, settings, seed=3)
    steady.train(PAIRS)
    state = steady.save_state(tmp_path / "state")
    resumed = Learner(Path(state) / "policy", settings, seed=99)  # a different seed: the state must win
    assert resumed.load_state(state) == steady.version == 1
    for learner in (steady, resumed):  # the second iteration refreshes the reference
        stats = learner.train(PAIRS)
    assert resumed.iterations == steady.iterations == 2 and resumed.version == steady.version == 2
    for (name, a), b in zip(steady.policy.named_parameters(), resumed.policy.parameters()):
        assert torch.allclose(a, b, atol=1e-6), name
    for a, b in zip(steady.reference.parameters(), resumed.reference.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    assert stats["steps"] == 3.0


def test_a_snapshot_is_of_the_version_the_generators_serve_while_a_later_one_trains(tiny_model: Path, tmp_path: Path) -> None:
    """The asynchronous pipeline admits a snapshot for the version that played while the learner
    already trains the next one: `keep_served` keeps what each broadcast sent, and a snapshot of
    that version is written from it."""
    from safetensors.torch import load_file

    learner = Learner(tiny_model, DPOSettings(batch_size=2, learning_rate=1e-2), seed=0)
    learner.keep_served()  # the generators serve version 0, as the learner holds it now
    served = {k: v.clone() for k, v in learner.policy.state_dict().items()}
    learner.train(PAIRS)  # version 1, not broadcast yet
    saved = load_file(Path(learner.save_snapshot(tmp_path / "v0", tiny_model, version=0)) / "model.safetensors")
    assert saved and all(torch.equal(v, served[k]) for k, v in saved.items())
    sent = learner.publish().weights  # version 1 broadcast, then version 2 trained
    learner.train(PAIRS)
    assert learner.version == 2
    saved = load_file(Path(learner.save_snapshot(tmp_path / "v1", tiny_model, version=1)) / "model.safetensors")
    assert all(torch.equal(v, sent[k]) for k, v in saved.items())
    assert not all(torch.equal(v, served[k]) for k, v in saved.items())
    with pytest.raises(ValueError, match="no weights of version 0 to snapshot"):
        learner.save_snapshot(tmp_path / "v0-again", tiny_model, version=0)
