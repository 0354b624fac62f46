"""Steps 2-4 without TensorFlow: tie traced channels into groups, then rank and keep per group."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from edgebuild.errors import ProfileError
from edgebuild.profiles.schema import PruningSection


def keep_count(n: int, ratio: float, round_to: int = 1, min_channels: int = 1) -> int:
    """How many of `n` removable channels stay: n - floor(n * ratio), rounded to a multiple of `round_to`
    (nearest, ties up, at least `round_to`), then clamped to [min(min_channels, n), n]."""
    if n <= 0:
        return 0
    keep = n - math.floor(n * ratio + 1e-9)
    if round_to > 1:
        keep = max(round_to, math.floor(keep / round_to + 0.5) * round_to)
    return max(min(min_channels, n), min(keep, n))


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[Any, Any] = {}

    def add(self, item: Any) -> None:
        self.parent.setdefault(item, item)

    def find(self, item: Any) -> Any:
        root = item
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[item] != root:
            self.parent[item], item = root, self.parent[item]
        return root

    def union(self, a: Any, b: Any) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb, key=str)] = min(ra, rb, key=str)


@dataclass
class ChannelGraph:
    """The traced channels (pure data): which ids each producer makes, which ids are tied or fixed."""

    producers: dict[str, list[int]] = field(default_factory=dict)  # producer layer -> its output channel ids
    ties: list[tuple[int, int]] = field(default_factory=list)
    fixed: set[int] = field(default_factory=set)


@dataclass(frozen=True)
class Group:
    layers: tuple[str, ...]  # producers sharing one mask
    channels: int  # removable channel units before
    kept: int  # after
    ratio: float


def select(graph: ChannelGraph, scores: dict[int, float], options: PruningSection) -> tuple[set[int], list[Group]]:
    """(ids kept, groups) from traced channels and per-id scores (higher = more important)."""
    uf = _UnionFind()
    for ids in graph.producers.values():
        for i in ids:
            uf.add(i)
    for i in graph.fixed:
        uf.add(i)
    for a, b in graph.ties:
        uf.add(a)
        uf.add(b)
        uf.union(a, b)
    fixed_roots = {uf.find(i) for i in graph.fixed}
    owner_of = {i: name for name, ids in graph.producers.items() for i in ids}
    members: dict[int, list[int]] = {}
    for i in uf.parent:
        members.setdefault(uf.find(i), []).append(i)
    # producers connected through tied channels form one group
    layer_uf = _UnionFind()
    for name in graph.producers:
        layer_uf.add(name)
    for ids in members.values():
        owners = sorted({owner_of[i] for i in ids if i in owner_of})
        for other in owners[1:]:
            layer_uf.union(owners[0], other)
    groups: dict[str, list[str]] = {}
    for name in graph.producers:
        groups.setdefault(layer_uf.find(name), []).append(name)
    kept_roots = set(fixed_roots)
    report = []
    for names in groups.values():
        names_set = set(names)
        roots = sorted({uf.find(i) for n in names for i in graph.producers[n]} - fixed_roots)
        if not roots:
            continue
        ratio = _group_ratio(names, options)
        ranked = sorted(roots, key=lambda r: (-sum(scores.get(i, 0.0) for i in members[r]), r))
        keep = set(ranked[: keep_count(len(roots), ratio, options.round_to, options.min_channels)])
        for name in names:  # every producer keeps at least min_channels of its own channels
            own = [r for r in ranked if any(owner_of.get(i) == name for i in members[r])]
            own_fixed = sum(1 for i in graph.producers[name] if uf.find(i) in fixed_roots)
            need = min(options.min_channels, len(own)) - own_fixed - sum(1 for r in own if r in keep)
            for r in own:
                if need <= 0:
                    break
                if r not in keep:
                    keep.add(r)
                    need -= 1
        kept_roots |= keep
        report.append(Group(tuple(n for n in names if n in names_set), len(roots), len(keep), ratio))
    kept = {i for i in uf.parent if uf.find(i) in kept_roots}
    return kept, report


def _group_ratio(names: list[str], options: PruningSection) -> float:
    given = {n: options.layer_ratios[n] for n in names if n in options.layer_ratios}
    if len(set(given.values())) > 1:
        raise ProfileError(
            f"pruning.layer_ratios gives different ratios to layers whose channels are tied (residual Add or "
            f"similar): {', '.join(f'{k} = {v}' for k, v in sorted(given.items()))}. They share one mask; give them "
            "the same ratio."
        )
    return next(iter(given.values())) if given else options.ratio
