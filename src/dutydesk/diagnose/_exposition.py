"""Reading a Prometheus text exposition into samples: which to keep, counters as rates,
histograms' `_bucket` series as a p95."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# Labels summed away: one series per CPU or per file system type is noise on a duty desk.
SUMMED_LABELS = frozenset({"cpu", "fstype"})


@dataclass(frozen=True)
class Sample:
    """One kept value: its metric name, its labels (sorted), its kind and value."""

    name: str
    labels: Labels
    kind: str
    value: float


Labels = tuple[tuple[str, str], ...]
Histograms = dict[tuple[str, Labels], dict[float, float]]


def parse(text: str, keep: Iterable[str]) -> tuple[list[Sample], Histograms]:
    """The samples of the metric families in `keep` (every family when `keep` is empty), with
    SUMMED_LABELS summed away, and the cumulative bucket counts of each histogram by its
    name and labels. Raises ValueError on text that is not an exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    wanted = set(keep)
    sums: dict[tuple[str, Labels, str], float] = {}
    buckets: Histograms = {}
    for family in text_string_to_metric_families(text):
        names = {family.name, f"{family.name}_total"}
        if wanted and not names & wanted:
            continue
        for sample in family.samples:
            labels = {k: v for k, v in sample.labels.items() if k not in SUMMED_LABELS}
            if family.type == "histogram":
                if sample.name.endswith("_bucket"):
                    bound = labels.pop("le", "+Inf")
                    key = (family.name, tuple(sorted(labels.items())))
                    counts = buckets.setdefault(key, {})
                    counts[float(bound)] = counts.get(float(bound), 0.0) + float(sample.value)
                continue
            if family.type == "counter" and not sample.name.endswith("_total"):
                continue  # `_created` timestamps are not values
            if family.type not in ("counter", "gauge", "untyped", "unknown"):
                continue
            kind = "counter" if family.type == "counter" else "gauge"
            skey = (sample.name, tuple(sorted(labels.items())), kind)
            sums[skey] = sums.get(skey, 0.0) + float(sample.value)
    found = [Sample(name, labels, kind, value) for (name, labels, kind), value in sums.items()]
    return found, buckets


def quantile(bounds: Mapping[float, float], q: float = 0.95) -> float | None:
    """The `q` quantile of cumulative bucket counts by upper bound, linearly interpolated
    inside its bucket as Prometheus' histogram_quantile does; None without observations."""
    ordered = sorted(bounds.items())
    if not ordered or ordered[-1][1] <= 0:
        return None
    rank = q * ordered[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if math.isinf(bound):
                return lower
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower
