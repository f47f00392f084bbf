"""Judges: score matchups and say who won. Rule verifiers first; more kinds plug into `Judge`."""
