"""Hierarchical fair share per accelerator class, water-filled level by level.

Plain Python on purpose: it runs once per cycle over the queue tree (a few
thousand numbers), and the reference cycle shares it so both agree to the bit.
"""

from __future__ import annotations

from collections.abc import Sequence

INF = float("inf")


def water_fill(
    available: float,
    deserved: Sequence[float],
    cap: Sequence[float],
    weight: Sequence[float],
) -> list[float]:
    """Split `available` among siblings.

    Each first gets min(deserved, cap); if those guarantees exceed what is
    available they are scaled down in proportion. What is left goes by weight
    to siblings still below their cap, never above it (water-filling).
    """
    n = len(deserved)
    base = [min(d, c) for d, c in zip(deserved, cap, strict=True)]
    total_base = sum(base)
    if total_base >= available:
        if total_base <= 0:
            return [0.0] * n
        scale = available / total_base
        return [b * scale for b in base]
    share = list(base)
    left = available - total_base
    # Siblings with unmet demand and a weight, in the order they saturate.
    open_ = [i for i in range(n) if cap[i] > base[i] and weight[i] > 0]
    open_.sort(key=lambda i: ((cap[i] - base[i]) / weight[i], i))
    total_weight = sum(weight[i] for i in open_)
    for pos, i in enumerate(open_):
        if left <= 0 or total_weight <= 0:
            break
        level = left / total_weight  # extra per unit of weight if nobody saturates
        room = cap[i] - base[i]
        if room <= level * weight[i]:
            share[i] = cap[i]
            left -= room
            total_weight -= weight[i]
        else:
            # Nobody from here on saturates: all get the same level.
            for j in open_[pos:]:
                share[j] = base[j] + level * weight[j]
            break
    return share


def fair_shares(
    parents: Sequence[int],
    deserved: Sequence[Sequence[float]],
    limit: Sequence[Sequence[float]],
    weight: Sequence[Sequence[float]],
    demand: Sequence[Sequence[float]],
    capacity: Sequence[float],
) -> list[list[float]]:
    """Fair share [queue][class] for a forest given by `parents` (-1 = top level).

    `demand` is a queue's own demand: a leaf's allocated + pending; an internal
    queue's own running work (from before it had children), to which the sum of
    its children's is added. Everything is capped by `limit`.
    """
    n = len(parents)
    n_classes = len(capacity)
    children: list[list[int]] = [[] for _ in range(n)]
    roots: list[int] = []
    for q, parent in enumerate(parents):
        (roots if parent < 0 else children[parent]).append(q)
    order = _post_order(roots, children)
    capped = [[0.0] * n_classes for _ in range(n)]
    for q in order:
        for c in range(n_classes):
            own = demand[q][c] + sum(capped[k][c] for k in children[q])
            capped[q][c] = min(own, limit[q][c])
    share = [[0.0] * n_classes for _ in range(n)]
    for c in range(n_classes):
        stack: list[tuple[list[int], float]] = [(roots, capacity[c])]
        while stack:
            siblings, available = stack.pop()
            if not siblings:
                continue
            split = water_fill(
                available,
                [deserved[q][c] for q in siblings],
                [capped[q][c] for q in siblings],
                [weight[q][c] for q in siblings],
            )
            for q, s in zip(siblings, split, strict=True):
                share[q][c] = s
                stack.append((children[q], s))
    return share


def _post_order(roots: list[int], children: list[list[int]]) -> list[int]:
    out: list[int] = []
    stack: list[tuple[int, bool]] = [(r, False) for r in reversed(roots)]
    while stack:
        q, done = stack.pop()
        if done:
            out.append(q)
            continue
        stack.append((q, True))
        stack.extend((k, False) for k in reversed(children[q]))
    return out
