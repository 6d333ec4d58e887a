"""Snapshot of the GraphQL SDL (the API's contract). Regenerate deliberately with ATLAS_UPDATE_SNAPSHOTS=1.

The snapshot covers the schema without the optional steering mutation (its owner snapshots that part),
so it does not change when atlas_api/steer_mutation.py lands; a second test checks the merge.
"""

from __future__ import annotations

import os
from pathlib import Path

from atlas_api.schema import build_schema, steer_mutation_type
from atlas_api.settings import ApiSettings

SNAPSHOT = Path(__file__).parent / "snapshots" / "schema.graphql"


def test_sdl_matches_snapshot() -> None:
    sdl = str(build_schema(ApiSettings(), include_steering=False)).strip() + "\n"
    if os.environ.get("ATLAS_UPDATE_SNAPSHOTS") or not SNAPSHOT.exists():
        SNAPSHOT.write_text(sdl)
    assert sdl == SNAPSHOT.read_text(), "the GraphQL schema changed: review the diff, then rerun with ATLAS_UPDATE_SNAPSHOTS=1"


def test_contract_names_present() -> None:
    sdl = str(build_schema(ApiSettings(), include_steering=False))
    for needle in (
        "feature(uid: String!", "features(where: FeatureWhere", "featuresConnection(first: Int", "totalCount: Int!", "pageInfo: PageInfo!",
        "lineage(uid: String!, direction: LineageDirection! = UPSTREAM", "minSimilarity: Float! = 0.5", "moduleMinSimilarity: Float! = 0.15",
        "topK: Int! = 1", "origin(uid: String!, thresholds: OriginThresholds", "circuit(uids: [String!]!", "path(from: String!, to: String!",
        "search(text: String!", "atlases(name: String", "union FeatureResult = Feature | FeatureNotFound | InvalidInput",
        "circuitTracerJson: JSON!", "setLabel(",
    ):
        assert needle in sdl, needle


def test_steering_mutation_is_merged_when_present() -> None:
    steer = steer_mutation_type()
    sdl = str(build_schema(ApiSettings()))
    if steer is None:
        assert "steer(" not in sdl
    else:
        assert "steer(" in sdl and "setLabel(" in sdl
