"""Leaf helpers shared by every stage. Nothing here imports from the stages (runtime, data,
ranker, evaluation, toy, cli), so any module may use them without creating a cycle."""
