"""Per-domain sums of one topology level, in value order.

Placement with a topology level asks two questions of a shape's per-domain fit
sums: the largest, and the tightest domain that holds `count` replicas (the
smallest sum >= count, lowest domain on ties). Each domain is one int in a
sorted list, `sum * domains + domain`, so both are a bisection and a change to
one domain is a removal and an insertion, without allocating containers (a
cycle makes many of them, and containers that outlive young collections bring
full collections sooner).
"""

from __future__ import annotations

from bisect import bisect_left, insort


class DomainSums:
    __slots__ = ("keys", "n", "sums", "total")

    def __init__(self, sums: list[int]) -> None:
        self.sums = sums
        self.n = max(len(sums), 1)
        self.total = sum(sums)
        self.keys = sorted(v * self.n + d for d, v in enumerate(sums))

    def max(self) -> int:
        return self.keys[-1] // self.n if self.keys else 0

    def tightest(self, count: int) -> int:
        """The domain with the smallest sum >= count, lowest index on ties; -1 if none."""
        i = bisect_left(self.keys, count * self.n)
        return self.keys[i] % self.n if i < len(self.keys) else -1

    def add(self, d: int, delta: int) -> None:
        old = self.sums[d]
        self.sums[d] = old + delta
        self.total += delta
        keys = self.keys
        del keys[bisect_left(keys, old * self.n + d)]
        insort(keys, (old + delta) * self.n + d)


class PoolDomains:
    """A pool's topology domains per level: where each starts, each node's domain
    (slice-relative), and zeroed room to add up changes per domain."""

    __slots__ = ("of", "scratch", "starts")

    def __init__(self, starts: list[list[int]], size: int) -> None:
        self.starts = starts
        self.of: list[list[int]] = []
        for level in starts:
            of = [0] * size
            for d, lo in enumerate(level):
                hi = level[d + 1] if d + 1 < len(level) else size
                of[lo:hi] = [d] * (hi - lo)
            self.of.append(of)
        self.scratch: list[list[int]] = [[0] * len(level) for level in starts]
