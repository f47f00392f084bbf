"""Generator actors: vLLM engines serving the current policy and the frozen snapshots."""
