"""The direct path for known query texts and the one-step completion of plain objects (atlas_api.execution)
answer exactly what strawberry's full pipeline answers — data, errors, codes, masking — and keep its rules.

Each case runs on a schema with ATLAS_API_DIRECT_EXECUTION off (the reference) and twice on one with it on: the
first request of a text takes strawberry's pipeline, the second the direct path. The graph is a stand-in that
answers feature look-ups and lists from fixed rows (what is checked is the execution in front of the database).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Iterator
from typing import Any

import pytest

from atlas_api.context import Context
from atlas_api.schema import build_schema
from atlas_api.settings import ApiSettings
from queries import errors as e

ROWS = {
    "a/1-res/2": {"module": "res", "category": "translated", "s_res": 0.91, "s_att": None, "label": "cats"},
    "a/1-att/3": {"module": "att", "category": None, "s_res": None, "s_att": None, "label": None},
    "a/1-res/7": {"module": "res", "atlas": None},  # a null in a non-null field: graphql-core's error
    "a/1-res/8": {"module": "res", "s_res": math.nan},  # a value Float refuses: graphql-core's error
}


def _row(uid: str) -> dict[str, Any]:
    atlas, _, rest = uid.partition("/")
    layer, index = int(rest.split("-")[0]), int(rest.rsplit("/", 1)[1])
    base = {"uid": uid, "atlas": atlas, "layer": layer, "index": index, "category": None, "s_res": 0.5}
    base.update({"s_att": 0.25, "s_mlp": 0.125, "label": None, "frequency": 1e-3, "d_sae": 64, "decoder_norm": 1.0})
    return {**base, **ROWS[uid]}


class FixedRows:
    async def read(self, text: Any, params: Any = None, **_: Any) -> list[dict[str, Any]]:
        await asyncio.sleep(0)
        params = params or {}
        if "uids" in params and "MATCH (f:Feature {uid: uid}) RETURN f" in text:
            if "a/1-res/503" in params["uids"]:
                raise e.DatabaseUnavailable("Neo4j at bolt://127.0.0.1:7687 is unreachable")
            return [{"f": _row(u)} for u in params["uids"] if u in ROWS]
        if "limit" in params:
            return [{"f": _row(u)} for u in sorted(ROWS)][: params["limit"]]
        raise RuntimeError(f"the stand-in graph has no rows for {text[:60]!r}")  # masked as INTERNAL


FULL = "uid atlas layer module index category sRes sAtt sMlp label frequency dSae decoderNorm"
CASES: list[tuple[str, dict[str, Any] | None, str | None]] = [
    (f"query($uid: String!) {{ feature(uid: $uid) {{ ... on Feature {{ {FULL} }} }} }}", {"uid": "a/1-res/2"}, None),
    (f"query($uid: String!) {{ feature(uid: $uid) {{ ... on Feature {{ {FULL} }} }} }}", {"uid": "a/1-att/3"}, None),
    (
        "query($uid: String!) { feature(uid: $uid) { __typename ... on FeatureNotFound { uid message } } }",
        {"uid": "a/1-res/404"},
        None,
    ),
    ("query { feature(uid: 'nonsense') { __typename } }".replace("'", '"'), None, None),
    (
        'query { feature(uid: "no-slashes") { ... on InvalidInput { field message } ... on Feature { uid } } }',
        None,
        None,
    ),
    (
        "query($uid: String!, $x: Boolean!) { f: feature(uid: $uid) { __typename ...F } "
        "g: feature(uid: $uid) { ... on Feature { id: uid l: layer uid @include(if: $x) label @skip(if: $x) } } } "
        "fragment F on Feature { module m2: module category }",
        {"uid": "a/1-res/2", "x": True},
        None,
    ),
    ("query($uid: String!) { feature(uid: $uid) { ... on Feature { uid atlas layer } } }", {"uid": "a/1-res/7"}, None),
    ("query($uid: String!) { feature(uid: $uid) { ... on Feature { uid sRes } } }", {"uid": "a/1-res/8"}, None),
    ("query($uid: String!) { feature(uid: $uid) { ... on Feature { uid } } }", {"uid": "a/1-res/503"}, None),
    ("query($uid: String!) { feature(uid: $uid) { ... on Feature { uid } } }", {"uid": 5}, None),
    ("query($uid: String!) { feature(uid: $uid) { ... on Feature { uid } } }", {}, None),
    ("query { features(limit: 3) { uid module sRes category } }", None, None),
    (
        "query { features(limit: 2) { uid neuronpediaUrl } }",  # a resolver of ours among the leaves; it fails
        None,
        None,
    ),
    ("query { features(limit: 9999) { uid } }", None, None),  # over maxPageSize: INVALID_INPUT
    (
        "query A { features(limit: 1) { uid } } query B($uid: String!) { feature(uid: $uid) { __typename } }",
        {"uid": "a/1-res/2"},
        "B",
    ),
    ("query A { features(limit: 1) { uid } }", None, "Nope"),  # an operation that is not in the document
    ("query A { features(limit: 1) { uid } } query B { features(limit: 2) { uid } }", None, None),  # which one?
    (
        'mutation M { setLabel(uid: "a/1-res/2", label: "x") { __typename } } query Q { features(limit: 1) { uid } }',
        None,
        "Q",
    ),
    ('query { lineage(uid: "a/1-res/2") { nodes { uid } } }', None, None),  # masked INTERNAL
    ('query { feature(uid: "a/1-res/2") { ... on Feature { uid nope } } }', None, None),  # validation error
]


def _execute(schema: Any, query: str, variables: dict[str, Any] | None, op: str | None, **ctx: Any) -> Any:
    context = Context(graph=FixedRows(), settings=schema.policy.settings, **ctx)  # type: ignore[arg-type]
    return asyncio.run(schema.execute(query, variable_values=variables, context_value=context, operation_name=op))


def _answer(run: Any) -> tuple[Any, list[dict[str, Any]]]:
    """The data and formatted errors, or the exception's type and text (strawberry raises for an unknown
    operation name; its HTTP view answers 400)."""
    try:
        result = run()
    except Exception as exc:  # noqa: BLE001 - compared between the two paths
        return type(exc).__name__, [{"message": str(exc)}]
    return result.data, [err.formatted for err in result.errors or []]


@pytest.mark.parametrize(("query", "variables", "op"), CASES)
def test_the_direct_path_answers_what_the_full_pipeline_answers(
    query: str, variables: dict[str, Any] | None, op: str | None, tmp_path: Any
) -> None:
    reference = build_schema(ApiSettings(keys_file=tmp_path / "k.json", direct_execution=False))
    direct = build_schema(ApiSettings(keys_file=tmp_path / "k.json"))
    want = _answer(lambda: _execute(reference, query, variables, op))
    first = _answer(lambda: _execute(direct, query, variables, op))
    assert direct.policy.known_query(query, op) is not None or want[1], "a clean query becomes known"
    second = _answer(lambda: _execute(direct, query, variables, op))
    assert first == want and second == want
    if want[1]:
        assert all(
            err.get("extensions", {}).get("code") != "INTERNAL" or err["message"] == "Unexpected error."
            for err in want[1]
        )  # masking holds on both paths


@contextlib.contextmanager
def _counting_completions() -> Iterator[dict[str, int]]:
    """Counts LeafExecutor's one-step completions (taken / sent back) while open. On exit the class attribute is
    put back exactly as it was: the staticmethod itself, read from the class __dict__. Restoring the function read
    through the class (``LeafExecutor._complete_leaves``) instead left a plain function there, which Python then
    bound to the executor, so every later test in the process failed with "takes 2 positional arguments"."""
    from atlas_api import execution

    calls = {"fast": 0, "back": 0}
    descriptor = execution.LeafExecutor.__dict__["_complete_leaves"]
    original = descriptor.__func__

    def counting(plan: Any, source: Any) -> Any:
        out = original(plan, source)
        calls["fast" if out is not None else "back"] += 1
        return out

    execution.LeafExecutor._complete_leaves = staticmethod(counting)  # type: ignore[method-assign]
    try:
        yield calls
    finally:
        setattr(execution.LeafExecutor, "_complete_leaves", descriptor)  # noqa: B010 - the descriptor, not a function


def test_plain_objects_complete_in_one_step_and_the_rest_through_graphql_core(tmp_path: Any) -> None:
    """The one-step completion is really taken for plain objects (it is what makes the path fast), and not for
    objects with a field of ours or a value graphql-core must report."""
    schema = build_schema(ApiSettings(keys_file=tmp_path / "k.json"))
    with _counting_completions() as calls:
        _execute(schema, "query { features(limit: 4) { uid module sRes } }", None, None)
        assert calls == {"fast": 3, "back": 1}  # a/1-res/7 is fine here (atlas not asked); the NaN row goes back
        _execute(schema, "query { features(limit: 2) { uid neuronpediaUrl } }", None, None)
        assert calls == {"fast": 3, "back": 1}  # a resolver among the fields: no plan at all


def test_counting_completions_leaves_the_executor_working_for_later_tests(tmp_path: Any) -> None:
    """Regression: after the counting helper closes, a later schema in the same process still completes plain
    objects in one step (it used to leave a plain function that broke every later API test in the process)."""
    from atlas_api import execution

    before = execution.LeafExecutor.__dict__["_complete_leaves"]
    with _counting_completions():
        pass
    assert execution.LeafExecutor.__dict__["_complete_leaves"] is before
    schema = build_schema(ApiSettings(keys_file=tmp_path / "k.json"))
    query = "query { features(limit: 2) { uid module } }"
    for _ in range(2):  # pipeline, then the direct path
        result = _execute(schema, query, None, None)
        assert not result.errors, result.errors
        assert [f["uid"] for f in result.data["features"]] == sorted(ROWS)[:2]


def test_a_known_read_is_still_refused_without_a_key_when_reads_are_keyed(tmp_path: Any) -> None:
    settings = ApiSettings(keys_file=tmp_path / "k.json", reads="keyed")
    schema = build_schema(settings)
    query = "query($uid: String!) { feature(uid: $uid) { __typename } }"
    for _ in range(3):  # pipeline, then the direct path twice
        response = _Response()
        result = _execute(schema, query, {"uid": "a/1-res/2"}, None, response=response)
        assert result.data is None and result.errors[0].extensions["code"] == "UNAUTHENTICATED"
        assert response.status_code == 401


def test_mutations_and_texts_with_errors_never_take_the_direct_path(tmp_path: Any) -> None:
    schema = build_schema(ApiSettings(keys_file=tmp_path / "k.json"))
    mutation = 'mutation { setLabel(uid: "a/1-res/2", label: "x") { __typename } }'
    bad = 'query { feature(uid: "a/1-res/2") { ... on Feature { nope } } }'
    for text in (mutation, bad):
        _execute(schema, text, None, None)
        assert schema.policy.known_query(text, None) is None


class _Response:
    def __init__(self) -> None:
        self.status_code = 200
        self.headers: dict[str, str] = {}
