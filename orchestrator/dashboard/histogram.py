"""Percentiles from bucket counts: the dashboard never sorts raw latencies.

Within a bucket the values are assumed evenly spread, so a percentile is interpolated
linearly between the bucket's bounds; its error is at most one bucket's width (the latency
buckets are 10 per decade: within about 26 %, usually much less).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence


def percentile(
    counts: Mapping[int, int], q: float, bounds: Callable[[int], tuple[float, float]]
) -> float | None:
    """The q-quantile (0 < q <= 1) of values binned as `counts` {bin: count}."""
    total = sum(counts.values())
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for bin_index in sorted(counts):
        count = counts[bin_index]
        if count <= 0:
            continue
        if seen + count >= rank:
            low, high = bounds(bin_index)
            return low + (high - low) * max(0.0, rank - seen) / count
        seen += count
    last = max(b for b, c in counts.items() if c > 0)
    return bounds(last)[1]


def percentiles(
    counts: Mapping[int, int],
    quantiles: Sequence[float],
    bounds: Callable[[int], tuple[float, float]],
) -> dict[str, float | None]:
    """{"p50": ..., "p95": ...} for the given quantiles."""
    return {f"p{round(q * 100):d}": percentile(counts, q, bounds) for q in quantiles}
