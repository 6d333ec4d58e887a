"""Request limits, the API key guard for mutations, and error masking.

- depth, aliases and tokens: strawberry's limiters; complexity: :class:`complexity_rule` estimates the
  work of a query before it runs (each field costs 1, graph-building fields cost more, list fields
  multiply their children by their page size) and refuses it above ``max_complexity``.
- mutations need the API key when ``ApiSettings.api_key`` is set (header ``X-API-Key`` or
  ``Authorization: Bearer``); the check runs before any resolver.
- errors: an expected failure (``queries.errors.AtlasError``) keeps its message and gets
  ``extensions.code`` (FEATURE_NOT_FOUND, INVALID_INPUT, DATABASE_UNAVAILABLE, ...); anything else is
  logged with its traceback and masked as "Unexpected error." (code INTERNAL).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterator
from typing import Any

from graphql import (
    ExecutionResult, FieldNode, FragmentSpreadNode, GraphQLError, InlineFragmentNode, IntValueNode,
    OperationDefinitionNode, SelectionSetNode,
)
from graphql.validation import ValidationContext, ValidationRule
from strawberry.extensions import MaskErrors, SchemaExtension
from strawberry.types.graphql import OperationType

from atlas_api.settings import ApiSettings
from queries import errors as qerrors

log = logging.getLogger(__name__)

# Fields that build graphs cost more than a property read.
_FIELD_COST = {"lineage": 50, "circuit": 100, "path": 100, "origin": 30, "search": 10, "featuresConnection": 5, "features": 2,
               "attributionGraphsUsingLineage": 60, "featureOrigins": 100, "similar": 50}
_PAGE_ARGS = ("limit", "first")
_NEIGHBOUR_FANOUT = 10


def complexity_rule(settings: ApiSettings) -> type[ValidationRule]:
    max_complexity = settings.max_complexity

    class ComplexityRule(ValidationRule):
        def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
            ctx: ValidationContext = self.context
            cost = self._selection_cost(node.selection_set, ctx, set())
            if cost > max_complexity:
                self.report_error(GraphQLError(
                    f"query complexity {cost} exceeds the limit of {max_complexity} "
                    "(ask for fewer fields or smaller pages, or split the query)",
                    node, extensions={"code": "QUERY_TOO_COMPLEX"},
                ))

        def _selection_cost(self, sel: SelectionSetNode | None, ctx: ValidationContext, seen: set[str]) -> int:
            if sel is None:
                return 0
            total = 0
            for s in sel.selections:
                if isinstance(s, FieldNode):
                    mult = 1
                    for arg in s.arguments or ():
                        if arg.name.value in _PAGE_ARGS:
                            mult = int(arg.value.value) if isinstance(arg.value, IntValueNode) else settings.max_page_size
                    if s.name.value in ("features", "featuresConnection", "search") and not any(a.name.value in _PAGE_ARGS for a in s.arguments or ()):
                        mult = settings.default_page_size
                    if s.name.value in ("predecessors", "successors"):
                        # Fan-out: k candidates from up to three modules; topK bounds it when given.
                        k = next((a.value for a in s.arguments or () if a.name.value == "topK"), None)
                        mult = 3 * int(k.value) if isinstance(k, IntValueNode) else _NEIGHBOUR_FANOUT
                    total += _FIELD_COST.get(s.name.value, 1) + max(mult, 1) * self._selection_cost(s.selection_set, ctx, seen)
                elif isinstance(s, InlineFragmentNode):
                    total += self._selection_cost(s.selection_set, ctx, seen)
                elif isinstance(s, FragmentSpreadNode):
                    name = s.name.value
                    frag = ctx.get_fragment(name)
                    if frag is not None and name not in seen:
                        total += self._selection_cost(frag.selection_set, ctx, seen | {name})
            return total

    return ComplexityRule


def _request_key(context: Any) -> str | None:
    request = getattr(context, "request", None)
    if request is None:
        return None
    key = request.headers.get("x-api-key")
    if key:
        return key
    auth = request.headers.get("authorization", "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else None


_CODES: list[tuple[type[Exception], str]] = [
    (qerrors.FeatureNotFound, "FEATURE_NOT_FOUND"),
    (qerrors.AtlasNotFound, "ATLAS_NOT_FOUND"),
    (qerrors.NotFound, "NOT_FOUND"),
    (qerrors.QueryTimeout, "QUERY_TIMEOUT"),
    (qerrors.InvalidInput, "INVALID_INPUT"),
    (qerrors.DatabaseUnavailable, "DATABASE_UNAVAILABLE"),
    (qerrors.ModelUnavailable, "MODEL_UNAVAILABLE"),
    (qerrors.AtlasError, "ATLAS_ERROR"),
]


def error_code(exc: BaseException) -> str:
    for cls, code in _CODES:
        if isinstance(exc, cls):
            return code
    return "INTERNAL"


class AtlasErrors(MaskErrors):
    """Keep expected failures (with a code), mask everything else; validation errors pass as they are."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=self._should_mask)

    @staticmethod
    def _should_mask(error: GraphQLError) -> bool:
        return error.original_error is not None and (
            isinstance(error.original_error, qerrors.QueryRejected)  # our own statement refused: a bug, not the user's input
            or not isinstance(error.original_error, (qerrors.AtlasError, GraphQLError))
        )

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        out: list[GraphQLError] = []
        for error in errors:
            orig = error.original_error
            if orig is None or isinstance(orig, GraphQLError):
                out.append(error)
            elif isinstance(orig, qerrors.AtlasError) and not isinstance(orig, qerrors.QueryRejected):
                out.append(GraphQLError(str(orig), error.nodes, error.source, error.positions, error.path, None,
                                        extensions={**(error.extensions or {}), "code": error_code(orig), **({"uid": orig.uid} if isinstance(orig, qerrors.FeatureNotFound) else {})}))
            else:
                log.error("unexpected error in %s", ".".join(map(str, error.path or [])), exc_info=orig)
                out.append(GraphQLError("Unexpected error.", error.nodes, error.source, error.positions, error.path, None, extensions={"code": "INTERNAL"}))
        return out


def atlas_extension(settings: ApiSettings) -> type[SchemaExtension]:
    """Every per-request rule of the API as ONE schema extension (strawberry pays a fixed cost per extension
    and hook on every request; five separate extensions were ~0.1 ms of a 0.3 ms request):

    - token limit, then a shared LRU of parsed documents (query text → AST);
    - validation of each distinct document once (GraphQL's rules + depth, aliases, complexity), cached:
      dashboards repeat the same documents with new variables, and every rule reads only the document,
      so the errors of a query text never change. Rule classes are built once; the LRUs are bounded so
      unique query texts cannot grow memory without limit;
    - mutations need the API key when one is configured, checked before any resolver runs;
    - error masking (:class:`AtlasErrors`).
    """
    from collections import OrderedDict
    from functools import lru_cache

    from graphql import parse
    from strawberry.extensions.max_aliases import create_validator as alias_rule
    from strawberry.extensions.query_depth_limiter import create_validator as depth_rule
    from strawberry.schema.schema import validate_document

    rules = (depth_rule(settings.max_query_depth, None), alias_rule(settings.max_aliases), complexity_rule(settings))
    parse_cached = lru_cache(maxsize=1024)(parse)
    validated: OrderedDict[tuple[int, str], list[GraphQLError]] = OrderedDict()
    maxsize = 1024

    class AtlasExtension(AtlasErrors):
        def on_operation(self) -> Iterator[None]:
            self.execution_context.parse_options["max_tokens"] = settings.max_tokens
            yield from super().on_operation()

        def on_parse(self) -> Iterator[None]:
            ec = self.execution_context
            ec.graphql_document = parse_cached(ec.query, **ec.parse_options)
            yield

        def on_validate(self) -> Iterator[None]:
            ec = self.execution_context
            key = (id(ec.schema), ec.query) if ec.query else None
            errors = validated.get(key) if key else None
            if errors is None:
                assert ec.graphql_document is not None  # parsed before validating
                errors = validate_document(ec.schema._schema, ec.graphql_document, (*ec.validation_rules, *rules))
                if key:
                    validated[key] = errors
                    if len(validated) > maxsize:
                        validated.popitem(last=False)
            else:
                validated.move_to_end(key)  # type: ignore[arg-type]
            ec.pre_execution_errors = list(errors)
            yield

        def on_execute(self) -> Iterator[None]:
            ec = self.execution_context
            if settings.api_key and ec.operation_type == OperationType.MUTATION:
                given = _request_key(ec.context)
                if not given or not hmac.compare_digest(given, settings.api_key):
                    ec.result = ExecutionResult(data=None, errors=[GraphQLError(
                        "mutations need the API key: send header 'X-API-Key: <key>' (or 'Authorization: Bearer <key>')",
                        extensions={"code": "UNAUTHENTICATED"},
                    )])
            yield

    return AtlasExtension


def schema_extensions(settings: ApiSettings) -> list[Any]:
    # A class, so every request gets a fresh instance (the caches live in the closure, shared).
    return [atlas_extension(settings)]
