"""Experiment trackers (logging.sinks): see trackers/base.py."""
