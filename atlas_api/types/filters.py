"""Filter, sort and threshold inputs (Neo4j GraphQL library shapes) and their conversion to queries' plain dicts."""

from __future__ import annotations

import enum
from typing import Any

import strawberry

from atlas_api.types.enums import Category, Module, SortDirection
from queries import domain


@strawberry.input
class IntFilter:
    eq: int | None = None
    ne: int | None = None
    in_: list[int] | None = strawberry.field(default=None, name="in")
    lt: int | None = None
    lte: int | None = None
    gt: int | None = None
    gte: int | None = None


@strawberry.input
class FloatFilter:
    eq: float | None = None
    lt: float | None = None
    lte: float | None = None
    gt: float | None = None
    gte: float | None = None
    is_null: bool | None = None


@strawberry.input
class StringFilter:
    eq: str | None = None
    ne: str | None = None
    in_: list[str] | None = strawberry.field(default=None, name="in")
    contains: str | None = None
    starts_with: str | None = None
    ends_with: str | None = None
    is_null: bool | None = None


@strawberry.input
class ModuleFilter:
    eq: Module | None = None
    in_: list[Module] | None = strawberry.field(default=None, name="in")


@strawberry.input
class CategoryFilter:
    eq: Category | None = None
    in_: list[Category] | None = strawberry.field(default=None, name="in")
    is_null: bool | None = None


@strawberry.input(description="Feature filter; fields at one level are ANDed. Shaped like Neo4j's GraphQL library.")
class FeatureWhere:
    uid: StringFilter | None = None
    atlas: StringFilter | None = None
    layer: IntFilter | None = None
    module: ModuleFilter | None = None
    index: IntFilter | None = None
    category: CategoryFilter | None = None
    s_res: FloatFilter | None = None
    s_att: FloatFilter | None = None
    s_mlp: FloatFilter | None = None
    label: StringFilter | None = None
    frequency: FloatFilter | None = None
    decoder_norm: FloatFilter | None = None
    steer_kl: FloatFilter | None = None
    steer_bench_gain: FloatFilter | None = None
    AND: list[FeatureWhere] | None = None
    OR: list[FeatureWhere] | None = None
    NOT: FeatureWhere | None = None


@strawberry.input(description="One sort key; give one field per entry, e.g. [{layer: ASC}, {sRes: DESC}].")
class FeatureSort:
    atlas: SortDirection | None = None
    layer: SortDirection | None = None
    module: SortDirection | None = None
    index: SortDirection | None = None
    category: SortDirection | None = None
    s_res: SortDirection | None = None
    s_att: SortDirection | None = None
    s_mlp: SortDirection | None = None
    frequency: SortDirection | None = None
    steer_kl: SortDirection | None = None
    steer_bench_gain: SortDirection | None = None
    uid: SortDirection | None = None


def where_to_dict(w: FeatureWhere | None) -> dict[str, Any] | None:
    """Turn the input object into the plain filter dict queries.features.compile_where takes."""
    if w is None:
        return None
    out: dict[str, Any] = {}
    for key in domain.FILTERABLE_FIELDS:
        f = getattr(w, key)
        if f is None:
            continue
        cond: dict[str, Any] = {}
        for op in ("eq", "ne", "in_", "lt", "lte", "gt", "gte", "contains", "starts_with", "ends_with", "is_null"):
            if not hasattr(f, op):
                continue
            v = getattr(f, op)
            if v is None:
                continue
            if isinstance(v, enum.Enum):
                v = v.value
            elif isinstance(v, list):
                v = [x.value if isinstance(x, enum.Enum) else x for x in v]
            cond["in" if op == "in_" else op] = v
        out[key] = cond
    if w.AND:
        out["AND"] = [where_to_dict(x) for x in w.AND]
    if w.OR:
        out["OR"] = [where_to_dict(x) for x in w.OR]
    if w.NOT:
        out["NOT"] = where_to_dict(w.NOT)
    return out


def sort_to_list(sort: list[FeatureSort] | None) -> list[dict[str, str]]:
    out = []
    for s in sort or []:
        for key in domain.SORTABLE_FIELDS:
            v = getattr(s, key)
            if v is not None:
                out.append({key: v.value})
    return out


@strawberry.input
class OriginThresholds:
    residual: float = strawberry.field(
        default=domain.RESIDUAL_CUT, description="Residual cut t_R: the chain stops below it (paper 0.5)."
    )
    module: float = strawberry.field(
        default=domain.MODULE_CUT,
        description="Module cut: an att/mlp predecessor explains the birth at or above it (paper 0.15).",
    )
