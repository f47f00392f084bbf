"""The driver side: configuration, the orchestrator and its loop, the CLI."""
