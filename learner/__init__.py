"""The learner: SFT warm-up, DPO on self-play pairs, checkpoints and weight publication."""
