"""The API's filter/sort inputs and enums are the domain's (queries.domain): one list, no drift."""

from __future__ import annotations

import dataclasses

from atlas_api import types as t
from queries import domain
from queries.features import FILTERABLE, compile_where


def _fields(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}  # strawberry inputs are dataclasses


def test_feature_where_and_sort_name_exactly_the_domain_fields() -> None:
    assert _fields(t.FeatureWhere) - {"AND", "OR", "NOT"} == set(domain.FILTERABLE_FIELDS)
    assert _fields(t.FeatureSort) == set(domain.SORTABLE_FIELDS)
    assert set(FILTERABLE) == set(domain.FILTERABLE_FIELDS)


def test_graphql_enums_are_the_domain_enums() -> None:
    assert t.Module is domain.Module and t.Category is domain.Category and t.LineageDirection is domain.Direction


def test_decoder_norm_filter_reaches_cypher() -> None:
    where = t.where_to_dict(t.FeatureWhere(decoder_norm=t.FloatFilter(gt=1.5)))
    assert where == {"decoder_norm": {"gt": 1.5}}
    text, params = compile_where(where)
    assert text == "f.decoder_norm > $w0" and params == {"w0": 1.5}
