"""`selfplay report RUN_DIR`: a run's figures and sample games in one self-contained HTML page."""
