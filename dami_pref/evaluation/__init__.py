"""The evaluation harness: every method's λ choices scored offline and live against baselines."""
