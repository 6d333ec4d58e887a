"""Validation of attribution-graph JSON against Neuronpedia's published graph schema, one object at a time.

Written from the schema's documented fields (Neuronpedia ``graph-schema.json``, "Anthropic Attribution Graph"
1.0.0): the document needs ``metadata``, ``qParams``, ``nodes``, ``links``; ``metadata`` needs ``slug``,
``scan``, ``prompt_tokens`` (strings) and ``prompt``; every node needs ``node_id``, ``feature`` (integer or
null), ``layer`` (string or integer), ``ctx_idx`` (integer), ``feature_type``, ``jsNodeId``, ``clerp``, and
``influence``/``activation`` are numbers or null when present; every link needs ``source``, ``target``
(strings) and ``weight`` (number). Types follow JSON Schema: booleans are not numbers, an integer may be
written ``3.0``. Every check raises :class:`GraphSchemaError` naming the first offending path, e.g.
``nodes[12].ctx_idx: expected integer, got "x"``. Checking item by item lets a streaming import stop at
the first bad object of a multi-GB file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from queries.errors import GraphSchemaError

TOP_REQUIRED = ("metadata", "qParams", "nodes", "links")
_NODE_REQUIRED: dict[str, tuple[str, ...]] = {
    "node_id": ("string",),
    "feature": ("integer", "null"),
    "layer": ("string", "integer"),
    "ctx_idx": ("integer",),
    "feature_type": ("string",),
    "jsNodeId": ("string",),
    "clerp": ("string",),
}
_NODE_OPTIONAL: dict[str, tuple[str, ...]] = {"influence": ("number", "null"), "activation": ("number", "null")}
_LINK_REQUIRED: dict[str, tuple[str, ...]] = {"source": ("string",), "target": ("string",), "weight": ("number",)}
_META_REQUIRED: dict[str, tuple[str, ...]] = {
    "slug": ("string",),
    "scan": ("string",),
    "prompt_tokens": ("array",),
    "prompt": ("string",),
}
_META_OPTIONAL: dict[str, tuple[str, ...]] = {
    "feature_details": ("object",),
    "node_threshold": ("number",),
    "info": ("object",),
    "generation_settings": ("object",),
    "pruning_settings": ("object",),
}
_FEATURE_DETAILS: dict[str, tuple[str, ...]] = {
    "feature_json_base_url": ("string",),
    "neuronpedia_source_set": ("string",),
    "neuronpedia_lorsa_source_set": ("string",),
}
_QPARAMS: dict[str, tuple[str, ...]] = {
    "pinnedIds": ("array",),
    "supernodes": ("array",),
    "linkType": ("string",),
    "clickedId": ("string",),
    "sg_pos": ("string",),
}


def _is(value: Any, kind: str) -> bool:
    if kind == "null":
        return value is None
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return not isinstance(value, bool) and (
            isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        )
    if kind == "number":
        return not isinstance(value, bool) and isinstance(value, (int, float))
    if kind == "array":
        return isinstance(value, list)
    if kind == "object":
        return isinstance(value, Mapping)
    raise ValueError(kind)


def _show(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_fields(
    obj: Any, path: str, required: Mapping[str, tuple[str, ...]], optional: Mapping[str, tuple[str, ...]] | None = None
) -> None:
    if not isinstance(obj, Mapping):
        raise GraphSchemaError(f"{path}: expected object, got {_show(obj)}")
    for key, kinds in required.items():
        if key not in obj:
            raise GraphSchemaError(f"{path}.{key}: required field is missing")
        if not any(_is(obj[key], k) for k in kinds):
            raise GraphSchemaError(f"{path}.{key}: expected {' or '.join(kinds)}, got {_show(obj[key])}")
    for key, kinds in (optional or {}).items():
        if key in obj and not any(_is(obj[key], k) for k in kinds):
            raise GraphSchemaError(f"{path}.{key}: expected {' or '.join(kinds)}, got {_show(obj[key])}")


def check_metadata(meta: Any, path: str = "metadata") -> None:
    _check_fields(meta, path, _META_REQUIRED, _META_OPTIONAL)
    for i, tok in enumerate(meta["prompt_tokens"]):
        if not isinstance(tok, str):
            raise GraphSchemaError(f"{path}.prompt_tokens[{i}]: expected string, got {_show(tok)}")
    if "feature_details" in meta:
        _check_fields(meta["feature_details"], f"{path}.feature_details", {}, _FEATURE_DETAILS)


def check_qparams(q: Any, path: str = "qParams") -> None:
    _check_fields(q, path, {}, _QPARAMS)
    for i, pid in enumerate(q.get("pinnedIds") or []):
        if not isinstance(pid, str):
            raise GraphSchemaError(f"{path}.pinnedIds[{i}]: expected string, got {_show(pid)}")


def check_node(node: Any, i: int) -> None:
    _check_fields(node, f"nodes[{i}]", _NODE_REQUIRED, _NODE_OPTIONAL)


def check_link(link: Any, i: int) -> None:
    _check_fields(link, f"links[{i}]", _LINK_REQUIRED)


def validate_graph(doc: Any) -> None:
    """Validate a whole graph document in memory (tests, exports of small graphs)."""
    if not isinstance(doc, Mapping):
        raise GraphSchemaError(f"(root): expected object, got {_show(doc)}")
    for key in TOP_REQUIRED:
        if key not in doc:
            raise GraphSchemaError(f"{key}: required field is missing")
    check_metadata(doc["metadata"])
    check_qparams(doc["qParams"])
    for name, check in (("nodes", check_node), ("links", check_link)):
        if not isinstance(doc[name], list):
            raise GraphSchemaError(f"{name}: expected array, got {_show(doc[name])}")
        for i, item in enumerate(doc[name]):
            check(item, i)
