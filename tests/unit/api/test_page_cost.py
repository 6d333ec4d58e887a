"""Feature.page carries a complexity cost (atlas_api.cost): a query asking for pages of many features is refused
by the complexity limit before anything runs, while the dashboard's feature-page query passes."""

from __future__ import annotations

import asyncio
from typing import Any

from graphql import parse, validate

from atlas_api.context import Context
from atlas_api.cost import complexity_rule
from atlas_api.schema import build_schema
from atlas_api.settings import ApiSettings

# The Feature tab's query (docs/dashboards.md, section 3).
FEATURE_PAGE = """query ($uid: String!) {
  feature(uid: $uid) { ... on Feature { uid label page {
    heldoutTokens firingTokens density activationHistogram { binEdges counts }
    exampleGroups { name minActivation maxActivation examples { tokens activations maxIndex } }
    logitLens { positive { token weight } negative { token weight } histogram { binEdges counts } }
  } } }
}"""
# Pages of 4000 features: 4 x (2 + 1000 x (page 5 + density 1)) = 24008 > 20000; without a cost on page it
# would be 4 x (2 + 1000 x 2) = 8008 and pass validation.
MANY_PAGES = "query { " + " ".join(f"f{i}: features(limit: 1000) {{ page {{ density }} }}" for i in range(4)) + " }"


class NoGraph:
    async def read(self, *_: Any, **__: Any) -> list[dict[str, Any]]:
        raise AssertionError("a refused query must not reach the graph")


def _complexity_errors(settings: ApiSettings, text: str) -> list[Any]:
    schema = build_schema(settings)
    return list(validate(schema._schema, parse(text), [complexity_rule(settings)]))


def test_a_query_for_many_pages_is_refused_with_the_usual_code(tmp_path: Any) -> None:
    settings = ApiSettings(keys_file=tmp_path / "k.json")
    errors = _complexity_errors(settings, MANY_PAGES)
    assert [err.extensions["code"] for err in errors] == ["QUERY_TOO_COMPLEX"]
    assert "24008" in errors[0].message

    schema = build_schema(settings)
    context = Context(graph=NoGraph(), settings=settings)  # type: ignore[arg-type]
    result = asyncio.run(schema.execute(MANY_PAGES, context_value=context))
    assert result.data is None and result.errors
    assert result.errors[0].extensions["code"] == "QUERY_TOO_COMPLEX"


def test_the_dashboard_feature_page_query_passes_the_limit(tmp_path: Any) -> None:
    settings = ApiSettings(keys_file=tmp_path / "k.json")
    assert _complexity_errors(settings, FEATURE_PAGE) == []
