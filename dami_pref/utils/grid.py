"""λ values: checking one, and the grid of candidates with a lookup that tolerates float noise.

λ values travel through YAML, JSON, parquet and ``round(·, 10)``, so 0.30000000000000004 and 0.3
must name the same candidate. :class:`Grid` is the one place that decides how close is equal.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence

from ..errors import DamiPrefError

TOLERANCE = 1e-6


class LambdaError(DamiPrefError, ValueError):
    """λ is not a number in [0, 1]."""


def check_lambda(lam: float) -> float:
    """λ as a float in [0, 1] (0 = Instruct, 1 = Thinking), or a LambdaError."""
    try:
        value = float(lam)
    except (TypeError, ValueError):
        raise LambdaError(f"λ must be a number in [0, 1], got {lam!r}") from None
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise LambdaError(f"λ must be in [0, 1] (0 = Instruct, 1 = Thinking), got {lam!r}")
    return value


def same_lambda(a: float, b: float) -> bool:
    return abs(float(a) - float(b)) <= TOLERANCE


def lambda_key(lam: float) -> float:
    """A hashable stand-in for λ that equal values (within the tolerance) share."""
    return round(float(lam), 6)


class Grid(Sequence[float]):
    """Sorted, distinct candidate λ values with a tolerant ``index``."""

    def __init__(self, values: Iterable[float]) -> None:
        values = sorted({check_lambda(v) for v in values})
        if not values:
            raise DamiPrefError("the λ grid is empty")
        self.values: list[float] = values
        self._index = {lambda_key(v): i for i, v in enumerate(values)}

    @classmethod
    def parse(cls, spec: "str | Iterable[float] | Grid") -> "Grid":
        return spec if isinstance(spec, Grid) else cls(parse_grid(spec))

    def __getitem__(self, i):  # type: ignore[override]
        return self.values[i]

    def __len__(self) -> int:
        return len(self.values)

    def __iter__(self) -> Iterator[float]:
        return iter(self.values)

    def __eq__(self, other) -> bool:
        if isinstance(other, Grid):
            other = other.values
        try:
            other = list(other)
        except TypeError:
            return NotImplemented
        return len(other) == len(self) and all(same_lambda(a, b) for a, b in zip(self, other))

    def __repr__(self) -> str:
        return f"Grid([{', '.join(f'{v:g}' for v in self.values)}])"

    def __contains__(self, lam) -> bool:
        return lambda_key(lam) in self._index

    def index(self, lam: float) -> int:  # type: ignore[override]
        """Position of λ on the grid; a clear error when it is not a candidate."""
        try:
            return self._index[lambda_key(lam)]
        except KeyError:
            raise DamiPrefError(f"λ={float(lam):g} is not on the grid {self.values}") from None

    def missing(self, values: Iterable[float]) -> list[float]:
        """The values that are not candidates of this grid."""
        return [v for v in values if v not in self]

    @property
    def lowest(self) -> float:
        return self.values[0]

    @property
    def highest(self) -> float:
        return self.values[-1]


def parse_grid(spec: str | Iterable[float]) -> list[float]:
    """``"0:1:0.1"`` (start:stop:step, stop included) or ``"0,0.25,1"`` → sorted λ values."""
    if isinstance(spec, Grid):
        return list(spec.values)
    if isinstance(spec, (int, float)):
        spec = [spec]
    if isinstance(spec, str):
        values = _parse_grid_text(spec)
    else:
        try:
            values = [float(x) for x in spec]
        except (TypeError, ValueError):
            raise DamiPrefError(f"cannot read λ grid {spec!r}: expected numbers") from None
    if not values:
        raise DamiPrefError(f"λ grid {spec!r} is empty")
    bad = [v for v in values if not 0.0 <= v <= 1.0]  # NaN fails this too
    if bad:
        raise DamiPrefError(f"λ grid {spec!r} has values outside [0, 1]: {bad}")
    return sorted(set(values))


def _parse_grid_text(spec: str) -> list[float]:
    text = spec.strip()
    try:
        if ":" in text:
            parts = [float(x) for x in text.split(":")]
            if len(parts) != 3 or parts[2] <= 0:
                raise ValueError
            start, stop, step = parts
            count = int(round((stop - start) / step)) + 1
            return [round(start + i * step, 10) for i in range(count)
                    if start + i * step <= stop + 1e-9]
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise DamiPrefError(f"cannot read λ grid {spec!r}; write start:stop:step "
                            "(e.g. 0:1:0.1) or a comma list (e.g. 0,0.5,1)") from None
