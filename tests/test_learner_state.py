"""A learner saved and taken up again goes on exactly as one that never stopped."""
from pathlib import Path

import pyarrow as pa
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
