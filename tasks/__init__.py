"""Tasks: what self-play is about. `example.py` is the record every package shares; `base.py` the
`Task` protocol and the registry; every other file here is one task kind a recipe can name."""
