"""Data of the pipeline: problem sets, grading, λ rollouts, the frontier they measure, and the
(Acc, Cost)-ranked preference pairs built from them."""
