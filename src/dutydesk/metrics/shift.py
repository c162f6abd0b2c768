"""The shift test the metric-shift rules and the weekly review's trends share: a value against
the median and the scaled median absolute deviation (MAD) of the points before it."""

from __future__ import annotations

import math
import statistics
from typing import Any

MAD_SCALE = 1.4826  # makes the MAD of normal data comparable to a standard deviation


def median_spread(history: list[float]) -> tuple[float, float]:
    """The history's median and its MAD scaled to a standard deviation's size."""
    median = statistics.median(history)
    return median, statistics.median(abs(x - median) for x in history) * MAD_SCALE


def shift_of(
    current: float, history: list[float], *, k: float, min_relative: float, direction: str
) -> tuple[bool, dict[str, Any]]:
    """Whether `current` is beyond k scaled MADs and the relative floor of the history's
    median, in the rule's direction (`drop`, `rise` or `both`); with the numbers."""
    median, mad = median_spread(history)
    change = current - median
    z = abs(change) / mad if mad > 0 else (math.inf if change else 0.0)
    relative = abs(change) / abs(median) if median else (math.inf if change else 0.0)
    direction_ok = direction == "both" or (change < 0 if direction == "drop" else change > 0)
    firing = direction_ok and z > k and relative >= min_relative
    numbers = {
        "value": current,
        "median": median,
        "mad": round(mad, 4),
        "change": change,
        "mads": None if math.isinf(z) else round(z, 2),
        "relative": None if math.isinf(relative) else round(relative, 4),
        "k": k,
        "min_relative": min_relative,
        "direction": direction,
    }
    return firing, numbers
