"""Property-based tests (hypothesis, fixed seed): the uid parser, the manifest loader and the filter compiler
raise nothing but the project's own errors (queries.errors.AtlasError), whatever they are given."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, seed, settings
from hypothesis import strategies as st

from queries.domain import FILTERABLE_FIELDS, Module
from queries.errors import AtlasError
from queries.features import compile_sort, compile_where, count_features_statement, list_features_statement
from queries.ids import FeatureRef, check_atlas_name, parse_uid
from saes.manifest import AtlasManifest, load_manifest, parse_manifest

SETTINGS = settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
uid_alphabet = string.ascii_lowercase + string.digits + "-/_ .:" + "ÄΩ\u0000\n"
atlas_names = st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True)
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True), st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda c: st.one_of(st.lists(c, max_size=4), st.dictionaries(st.text(max_size=8), c, max_size=4)),
    max_leaves=12,
)


@seed(1)
@SETTINGS
@given(
    text=st.one_of(st.text(max_size=40), st.text(alphabet=uid_alphabet, max_size=40)),
    atlas=st.one_of(st.none(), st.text(max_size=12), atlas_names),
)
def test_uid_parser_only_raises_atlas_errors(text: str, atlas: str | None) -> None:
    try:
        ref = parse_uid(text, atlas)
    except AtlasError:
        return
    assert isinstance(ref, FeatureRef) and parse_uid(ref.uid) == ref  # whatever parses, round-trips


@seed(2)
@SETTINGS
@given(
    atlas=atlas_names, layer=st.integers(0, 10_000), module=st.sampled_from(list(Module)), index=st.integers(0, 10**9)
)
def test_uid_round_trip(atlas: str, layer: int, module: Module, index: int) -> None:
    ref = FeatureRef(atlas, layer, module, index)
    assert parse_uid(ref.uid) == ref
    assert parse_uid(f"{layer}/{module.value}/{index}", atlas) == ref


FIELDS = list(FILTERABLE_FIELDS)  # the whitelist itself: a field added there is fuzzed too
ops = st.sampled_from(
    ["eq", "ne", "lt", "lte", "gt", "gte", "in", "contains", "starts_with", "ends_with", "is_null", "nope"]
)
conds = st.one_of(st.dictionaries(ops, json_values, max_size=3), json_values)
keys = st.one_of(st.sampled_from([*FIELDS, "AND", "OR", "NOT"]), st.text(max_size=10))
wheres = st.recursive(
    st.dictionaries(keys, conds, max_size=4),
    lambda c: st.dictionaries(
        st.sampled_from(["AND", "OR", "NOT"]), st.one_of(st.lists(c, max_size=3), c, json_values), max_size=3
    ),
    max_leaves=10,
)
sorts = st.one_of(
    st.none(),
    st.lists(
        st.dictionaries(
            st.one_of(st.sampled_from(FIELDS), st.text(max_size=6)),
            st.one_of(st.none(), st.sampled_from(["ASC", "desc", "up"]), json_scalars),
            max_size=2,
        ),
        max_size=3,
    ),
)


@seed(3)
@SETTINGS
@given(where=st.one_of(st.none(), wheres), sort=sorts)
def test_filter_compiler_only_raises_atlas_errors(where: Any, sort: Any) -> None:
    try:
        text, params = list_features_statement(where, sort, limit=10, offset=0)
        ctext, _ = count_features_statement(where)
    except AtlasError:
        return
    # Values never reach the statement text (no quote is ever in it): only whitelisted fields, operators and $parameters do.
    assert "'" not in text and '"' not in text and all(f"${name}" in text for name in params if name.startswith("w"))
    assert text.startswith("MATCH (f:Feature) WHERE ") and ctext.startswith("MATCH (f:Feature) WHERE ")


def test_filter_compiler_examples() -> None:
    cond, params = compile_where(
        {"layer": {"eq": 3}, "OR": [{"label": {"contains": "x'})--"}}, {"NOT": {"s_res": {"is_null": True}}}]}
    )
    assert "x'})--" not in cond and set(params.values()) == {3, "x'})--"}
    assert compile_sort([{"layer": "desc"}]) == "ORDER BY f.layer IS NULL, f.layer DESC, f.uid ASC"


toml_texts = st.one_of(
    st.text(max_size=200),
    st.lists(
        st.sampled_from(
            [
                'name = "a"',
                'model = "m"',
                "d_model = 8",
                "d_model = -1",
                "[[sae]]",
                "layer = 1",
                'module = "res"',
                'path = "x.safetensors"',
                'source = "synthetic"',
                "[[sae]",
                "name = 3",
                'd_sae = "x"',
                "[sae]",
                "k = 1e999",
                'hook = "blocks.0"',
                "[synthetic]",
                "seed = 1",
                "d_sae = 16",
            ]
        ),
        max_size=12,
    ).map("\n".join),
)


def _holds_the_manifest_invariants(m: AtlasManifest) -> None:
    """What saes/manifest.py promises of every manifest it returns."""
    assert check_atlas_name(m.name) == m.name
    keys = [(e.layer, e.module) for e in m.saes]
    assert len(keys) == len(set(keys)), "two SAEs share a (layer, module)"
    for e in m.saes:
        assert (e.path is not None) + (e.release is not None and e.sae_id is not None) + (e.synthetic is not None) == 1
        assert e.synthetic is None or e.synthetic.d_in is not None
    if m.layers:
        assert all(m.entry(layer, Module.RES) is not None for layer in range(m.layers[0], m.layers[-1] + 1))
    assert all(m.entry(c.layer, c.module) is not None for c in m.ceilings)


VALID_TOML = 'name = "a"\nmodel = "m"\nd_model = 8\n[[sae]]\nlayer = 0\nmodule = "res"\n[sae.synthetic]\nd_sae = 16\n'


@seed(4)
@SETTINGS
@given(text=toml_texts)
@example(text=VALID_TOML)  # the success path is exercised on every run, not only when hypothesis finds one
def test_manifest_loader_only_raises_atlas_errors(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    folder = tmp_path_factory.mktemp("m", numbered=True)
    path = Path(folder) / "atlas.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass") if "\ud800" not in text else path.write_bytes(
        text.encode("utf-8", "replace")
    )
    try:
        m = load_manifest(path)
    except AtlasError:
        return
    _holds_the_manifest_invariants(m)


@seed(5)
@SETTINGS
@given(
    data=st.dictionaries(
        st.sampled_from(["name", "model", "d_model", "sae", "synthetic", "thresholds", "x"]), json_values, max_size=6
    ),
    saes=st.lists(
        st.dictionaries(
            st.sampled_from(
                ["layer", "module", "path", "source", "hook", "d_sae", "d_in", "release", "sae_id", "seed"]
            ),
            json_values,
            max_size=6,
        ),
        max_size=3,
    ),
)
@example(
    data={"name": "a", "model": "m", "d_model": 8}, saes=[{"layer": 0, "module": "res", "synthetic": {"d_sae": 4}}]
)
def test_manifest_parser_only_raises_atlas_errors(data: dict[str, Any], saes: list[dict[str, Any]]) -> None:
    if saes:
        data = {**data, "sae": saes}
    try:
        m = parse_manifest(data, base_dir=Path("/nonexistent"), where="atlas.toml")
    except AtlasError:
        return
    _holds_the_manifest_invariants(m)
