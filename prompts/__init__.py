"""Prompts as every package sees them: the neutral `Example` record and the renderer that
turns a prompt into what a model reads (its chat template, or raw text). Tasks produce
examples; judges, the league, the learner and the driver consume them without importing
any task."""
