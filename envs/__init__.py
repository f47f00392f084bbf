"""Turn-based environments: the rules of multi-turn games, one module per game (see envs/base.py)."""
