"""Ways of playing: one module per game, each registered by name (see games/base.py)."""
