"""The fair share the metrics measure every policy against.

Each queue first gets min(deserved, demand); what is left is water-filled by the
queues' shares among those with unmet demand. Written here, independent of any policy,
so the yardstick does not move with the policy under test.
"""

from __future__ import annotations

from collections.abc import Sequence


def fair_split(capacity: float, shares: Sequence[float], demand: Sequence[float]) -> list[float]:
    n = len(shares)
    fair = [min(s * capacity, d) for s, d in zip(shares, demand, strict=True)]
    left = capacity - sum(fair)
    hungry = {i for i in range(n) if demand[i] > fair[i]}
    while left > 1e-9 and hungry:
        weight = sum(shares[i] for i in hungry)
        step = left / weight
        # Give everyone `step` per unit of share unless that overshoots someone's demand.
        sated = {i for i in hungry if demand[i] - fair[i] <= step * shares[i]}
        if not sated:
            for i in hungry:
                fair[i] += step * shares[i]
            break
        for i in sated:
            left -= demand[i] - fair[i]
            fair[i] = demand[i]
        hungry -= sated
    return fair
