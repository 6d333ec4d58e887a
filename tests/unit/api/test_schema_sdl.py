"""Snapshot of the whole GraphQL SDL (the API's contract, steering included).

The dashboard generates its TypeScript types from the snapshot (dashboard/codegen.ts reads this file), so a schema change
shows up here first and then breaks the dashboard's build where it matters. Regenerate deliberately with
``ATLAS_UPDATE_SNAPSHOTS=1``; a missing snapshot is a failure, never silently written.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from atlas_api.schema import build_schema
from atlas_api.settings import ApiSettings

SNAPSHOT = Path(__file__).parent / "snapshots" / "schema.graphql"


def test_sdl_matches_snapshot() -> None:
    sdl = str(build_schema(ApiSettings())).strip() + "\n"
    if os.environ.get("ATLAS_UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(sdl)
    if not SNAPSHOT.exists():
        pytest.fail(f"{SNAPSHOT} is missing: write it with ATLAS_UPDATE_SNAPSHOTS=1 and commit it", pytrace=False)
    assert sdl == SNAPSHOT.read_text(), (
        "the GraphQL schema changed: review the diff, then rerun with ATLAS_UPDATE_SNAPSHOTS=1"
    )


def test_contract_names_present() -> None:
    sdl = str(build_schema(ApiSettings()))
    for needle in (
        "feature(uid: String!",
        "features(where: FeatureWhere",
        "featuresConnection(first: Int",
        "totalCount: Int!",
        "pageInfo: PageInfo!",
        "lineage(uid: String!, direction: LineageDirection! = UPSTREAM",
        "minSimilarity: Float! = 0.5",
        "moduleMinSimilarity: Float! = 0.15",
        "topK: Int! = 1",
        "origin(uid: String!, thresholds: OriginThresholds",
        "circuit(uids: [String!]!",
        "path(from: String!, to: String!",
        "search(text: String!",
        "atlases(name: String",
        "union FeatureResult = Feature | FeatureNotFound | InvalidInput",
        "circuitTracerJson: JSON!",
        "setLabel(",
        "steer(input: SteerInput!): SteerResult!",
        "union SteerResult = SteerSuccess | FeatureNotFound | InvalidInput | ModelUnavailable",
        "steeringRuns(atlas: String!",
        "topContexts: [String!]",
        "layerCategories: [LayerCategories!]!",
        "scoreHistograms(bins: Int! = 20)",
    ):
        assert needle in sdl, needle
