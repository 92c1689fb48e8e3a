"""The properties the toy pair must have, read off a greedy sweep of its test set."""

from __future__ import annotations

from . import task as toy_task


def check_properties(report: dict) -> list[tuple[str, str, bool]]:
    """The properties the toy pair must have, read off a greedy sweep report of its test set.

    Returns (property, measured value, holds) rows, so a rebuild shows at once what moved.
    """
    rows = {round(r["lambda"], 6): r for r in report["lambdas"]}
    if 0.0 not in rows or 1.0 not in rows:
        raise ValueError("the sweep must include λ=0 and λ=1")
    instruct, thinking, oracle = rows[0.0], rows[1.0], report["oracle"]
    acc_t = thinking["accuracy_by_difficulty"]
    acc_i = instruct["accuracy_by_difficulty"]
    lo, hi = str(toy_task.MIN_OPERANDS), str(toy_task.MAX_OPERANDS)
    mixed = [lam for lam, r in rows.items() if 0.0 < r["think_rate"] < 1.0]
    token_ratio = thinking["mean_tokens"] / max(instruct["mean_tokens"], 1e-9)
    oracle_lams = oracle["mean_lambda_by_difficulty"]
    return [
        ("Thinking accuracy ≥ 97% on every k", f"min {100 * min(acc_t.values()):.1f}%",
         min(acc_t.values()) >= 0.97),
        ("Instruct accuracy ≥ 90% at k=2", f"{100 * acc_i[lo]:.1f}%", acc_i[lo] >= 0.90),
        ("Instruct accuracy ≤ 40% at k=8", f"{100 * acc_i[hi]:.1f}%", acc_i[hi] <= 0.40),
        ("Thinking tokens ≥ 4× Instruct's", f"{token_ratio:.1f}×", token_ratio >= 4),
        ("≥ 3 grid points with think rate strictly in (0, 100%)",
         f"{len(mixed)}: {', '.join(f'{x:g}' for x in sorted(mixed))}", len(mixed) >= 3),
        ("oracle reaches Thinking's accuracy", f"{100 * oracle['accuracy']:.1f}% vs "
         f"{100 * thinking['accuracy']:.1f}%", oracle["accuracy"] >= thinking["accuracy"]),
        ("oracle tokens ≤ 50% of Thinking's", f"{100 * oracle['tokens_relative_to_thinking']:.0f}%",
         oracle["tokens_relative_to_thinking"] <= 0.5),
        ("oracle λ differs between difficulty levels",
         " ".join(f"k{k}:{v:.2f}" for k, v in oracle_lams.items()),
         len({round(v, 2) for v in oracle_lams.values()}) > 1),
    ]


def format_properties(rows: list[tuple[str, str, bool]]) -> str:
    lines = ["| required property | measured | holds |", "|---|---|:-:|"]
    lines += [f"| {name} | {value} | {'yes' if ok else 'NO'} |" for name, value, ok in rows]
    return "\n".join(lines)
