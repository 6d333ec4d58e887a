"""GraphQL types of the API, one concern per module, re-exported here (``from atlas_api.types import Feature``).

Modules depend one way: enums, errors, pages ← feature ← flow, atlas; filters and steering stand alone. Field
names follow Neo4j's GraphQL library (``where``/``sort``/``...Connection``). The result unions below pair a
type with its expected failures (``FeatureNotFound``/``InvalidInput``, see :func:`error_result`).
"""

from __future__ import annotations

from typing import Annotated

import strawberry

from atlas_api.types.atlas import AtlasInfo, EntryPoint, LayerCategories, SAEInfo, ScoreControl, ScoreHistogram
from atlas_api.types.enums import Category, LineageDirection, Module, SortDirection
from atlas_api.types.errors import FeatureNotFound, InvalidInput, error_result
from atlas_api.types.feature import (
    MAX_PAGES_PER_REQUEST,
    Feature,
    FeatureEdge,
    FeaturesConnection,
    Link,
    PageInfo,
    SearchHit,
    Steerability,
)
from atlas_api.types.filters import (
    CategoryFilter,
    FeatureSort,
    FeatureWhere,
    FloatFilter,
    IntFilter,
    ModuleFilter,
    OriginThresholds,
    StringFilter,
    sort_to_list,
    where_to_dict,
)
from atlas_api.types.flow import FlowEdge, FlowGraph, Origin, OriginStep, Path
from atlas_api.types.pages import (
    ActivationExample,
    DensityHistogram,
    ExampleGroup,
    FeaturePage,
    Histogram,
    LogitLens,
    TokenWeight,
)
from atlas_api.types.steering import SteeringRun, SteeringRunFeature

FeatureResult = Annotated[Feature | FeatureNotFound | InvalidInput, strawberry.union("FeatureResult")]
OriginResult = Annotated[Origin | FeatureNotFound | InvalidInput, strawberry.union("OriginResult")]
CircuitResult = Annotated[FlowGraph | FeatureNotFound | InvalidInput, strawberry.union("CircuitResult")]
PathResult = Annotated[Path | FeatureNotFound | InvalidInput, strawberry.union("PathResult")]

__all__ = [
    "MAX_PAGES_PER_REQUEST",
    "ActivationExample",
    "AtlasInfo",
    "Category",
    "CategoryFilter",
    "CircuitResult",
    "DensityHistogram",
    "EntryPoint",
    "ExampleGroup",
    "Feature",
    "FeatureEdge",
    "FeatureNotFound",
    "FeaturePage",
    "FeatureResult",
    "FeatureSort",
    "FeatureWhere",
    "FeaturesConnection",
    "FloatFilter",
    "FlowEdge",
    "FlowGraph",
    "Histogram",
    "IntFilter",
    "LayerCategories",
    "LineageDirection",
    "Link",
    "LogitLens",
    "Module",
    "ModuleFilter",
    "Origin",
    "OriginResult",
    "OriginStep",
    "OriginThresholds",
    "PageInfo",
    "Path",
    "PathResult",
    "SAEInfo",
    "ScoreControl",
    "ScoreHistogram",
    "SearchHit",
    "SortDirection",
    "Steerability",
    "SteeringRun",
    "SteeringRunFeature",
    "StringFilter",
    "TokenWeight",
    "error_result",
    "sort_to_list",
    "where_to_dict",
]
