"""Request limits, the API key guard for mutations, and error masking.

- depth, aliases and tokens: strawberry's limiters; complexity: :class:`complexity_rule` estimates the
  work of a query before it runs (each field costs 1, graph-building fields cost more, list fields
  multiply their children by their page size) and refuses it above ``max_complexity``.
- keys and roles (atlas_api.keys): mutations need a key with their role (unless mutations are open),
  reads too when ``reads = "keyed"``; per-key rate limits and the steering gate (atlas_api.guard). All
  of it runs before any resolver; refusals are typed errors with an HTTP status (401/403/429).
- admission: at most ``max_concurrent_requests`` operations execute at once (heavy ones, by graph work, fewer);
  the rest queue and are refused only after ``request_queue_timeout_s`` with OVERLOADED (503, retryAfter).
- errors: an expected failure (``queries.errors.AtlasError``) keeps its message and gets
  ``extensions.code`` (FEATURE_NOT_FOUND, INVALID_INPUT, DATABASE_UNAVAILABLE, ...); anything else is
  logged with its traceback and masked as "Unexpected error." (code INTERNAL).
"""

from __future__ import annotations

import hmac
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Generic, TypeVar

from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
)
from graphql.validation import ValidationRule
from strawberry.extensions import MaskErrors, SchemaExtension
from strawberry.types.graphql import OperationType

from atlas_api.guard import Admission, RateLimiter, SteerGate
from atlas_api.keys import MUTATION_ROLES, ApiKey, KeyStore, Role
from atlas_api.settings import ApiSettings
from queries import errors as qerrors

log = logging.getLogger(__name__)
V = TypeVar("V")

# Fields that build graphs cost more than a property read.
_FIELD_COST = {
    "lineage": 50,
    "circuit": 100,
    "path": 100,
    "origin": 30,
    "search": 10,
    "featuresConnection": 5,
    "features": 2,
    "attributionGraphsUsingLineage": 60,
    "featureOrigins": 100,
    "similar": 50,
}
_PAGE_ARGS = ("limit", "first")
_NEIGHBOUR_FANOUT = 10


def selection_cost(
    sel: SelectionSetNode | None,
    settings: ApiSettings,
    fragment: Callable[[str], FragmentDefinitionNode | None],
    seen: frozenset[str] = frozenset(),
) -> int:
    """The complexity estimate of a selection set (see the module docstring); ``fragment`` looks up fragments by name."""
    if sel is None:
        return 0
    total = 0
    for s in sel.selections:
        if isinstance(s, FieldNode):
            mult = 1
            for arg in s.arguments or ():
                if arg.name.value in _PAGE_ARGS:
                    mult = int(arg.value.value) if isinstance(arg.value, IntValueNode) else settings.max_page_size
            if s.name.value in ("features", "featuresConnection", "search") and not any(
                a.name.value in _PAGE_ARGS for a in s.arguments or ()
            ):
                mult = settings.default_page_size
            if s.name.value in ("predecessors", "successors"):
                # Fan-out: k candidates from up to three modules; topK bounds it when given.
                k = next((a.value for a in s.arguments or () if a.name.value == "topK"), None)
                mult = 3 * int(k.value) if isinstance(k, IntValueNode) else _NEIGHBOUR_FANOUT
            total += _FIELD_COST.get(s.name.value, 1) + max(mult, 1) * selection_cost(
                s.selection_set, settings, fragment, seen
            )
        elif isinstance(s, InlineFragmentNode):
            total += selection_cost(s.selection_set, settings, fragment, seen)
        elif isinstance(s, FragmentSpreadNode):
            name = s.name.value
            frag = fragment(name)
            if frag is not None and name not in seen:
                total += selection_cost(frag.selection_set, settings, fragment, seen | {name})
    return total


def complexity_rule(settings: ApiSettings) -> type[ValidationRule]:
    max_complexity = settings.max_complexity

    class ComplexityRule(ValidationRule):
        def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
            cost = selection_cost(node.selection_set, settings, self.context.get_fragment)
            if cost > max_complexity:
                self.report_error(
                    GraphQLError(
                        f"query complexity {cost} exceeds the limit of {max_complexity} "
                        "(ask for fewer fields or smaller pages, or split the query)",
                        node,
                        extensions={"code": "QUERY_TOO_COMPLEX"},
                    )
                )

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


def _client(context: Any) -> str:
    request = getattr(context, "request", None)
    client = getattr(request, "client", None)
    return client.host if client else "unknown"


_LEGACY = ApiKey(id="env", name="ATLAS_API_API_KEY", roles=frozenset({Role.ADMIN}), sha256="")
_HTTP_STATUS = {"UNAUTHENTICATED": 401, "FORBIDDEN": 403, "RATE_LIMITED": 429, "STEER_BUSY": 429, "OVERLOADED": 503}


def operation_shape(doc: Any, operation_name: str | None) -> tuple[tuple[str, ...], int]:
    """The executed operation's top-level field names (through fragments), e.g. ("setLabel",), and the graph work
    they ask of Neo4j: the sum of their own costs (``circuit`` 100, ``lineage`` 50, a plain read 1), without the
    page-size multipliers of the complexity limit, which measure the answer's size rather than Neo4j's work."""
    frags = {d.name.value: d for d in doc.definitions if isinstance(d, FragmentDefinitionNode)} if doc else {}
    ops = [d for d in doc.definitions if isinstance(d, OperationDefinitionNode)] if doc else []
    op = next((o for o in ops if operation_name is None or (o.name and o.name.value == operation_name)), None)
    out: list[str] = []

    def walk(sel: SelectionSetNode, seen: frozenset[str]) -> None:
        for s in sel.selections:
            if isinstance(s, FieldNode):
                out.append(s.name.value)
            elif isinstance(s, InlineFragmentNode):
                walk(s.selection_set, seen)
            elif isinstance(s, FragmentSpreadNode) and s.name.value in frags and s.name.value not in seen:
                walk(frags[s.name.value].selection_set, seen | {s.name.value})

    if op is None:
        return (), 0
    walk(op.selection_set, frozenset())
    return tuple(out), sum(_FIELD_COST.get(f, 1) for f in out)


def _refuse(ec: Any, exc: qerrors.AtlasError) -> None:
    """Answer the request with ``exc`` as a typed error (and its HTTP status) without executing it."""
    code = error_code(exc)
    ext: dict[str, Any] = {"code": code}
    response = getattr(ec.context, "response", None)
    if isinstance(exc, qerrors.RetryLater):
        ext["retryAfter"] = exc.retry_after
        if response is not None:
            response.headers["retry-after"] = str(exc.retry_after)
    if response is not None and code in _HTTP_STATUS:
        response.status_code = _HTTP_STATUS[code]
    ec.result = ExecutionResult(data=None, errors=[GraphQLError(str(exc), extensions=ext)])


_CODES: list[tuple[type[Exception], str]] = [
    (qerrors.QueryRejected, "INTERNAL"),  # Neo4j refused one of our own statements: a bug, masked
    (qerrors.FeatureNotFound, "FEATURE_NOT_FOUND"),
    (qerrors.AtlasNotFound, "ATLAS_NOT_FOUND"),
    (qerrors.NotFound, "NOT_FOUND"),
    (qerrors.QueryTimeout, "QUERY_TIMEOUT"),
    (qerrors.InvalidInput, "INVALID_INPUT"),
    (qerrors.DatabaseBusy, "DATABASE_BUSY"),
    (qerrors.DatabaseUnavailable, "DATABASE_UNAVAILABLE"),
    (qerrors.Overloaded, "OVERLOADED"),
    (qerrors.ModelUnavailable, "MODEL_UNAVAILABLE"),
    (qerrors.Unauthenticated, "UNAUTHENTICATED"),
    (qerrors.Forbidden, "FORBIDDEN"),
    (qerrors.SteerBusy, "STEER_BUSY"),
    (qerrors.RateLimited, "RATE_LIMITED"),
    (qerrors.AtlasError, "ATLAS_ERROR"),
]


def error_code(exc: BaseException) -> str:
    for cls, code in _CODES:
        if isinstance(exc, cls):
            return code
    return "INTERNAL"


# Plain-HTTP routes: GraphQL's refusal statuses plus those a route answers itself (GraphQL answers 200 there).
_ROUTE_STATUS = {
    **_HTTP_STATUS,
    "FEATURE_NOT_FOUND": 404,
    "ATLAS_NOT_FOUND": 404,
    "NOT_FOUND": 404,
    "DATABASE_UNAVAILABLE": 503,
    "DATABASE_BUSY": 503,
    "MODEL_UNAVAILABLE": 503,
    "INTERNAL": 500,
}


def http_error(exc: BaseException) -> tuple[dict[str, str], int]:
    """The body and status of a plain-HTTP route's error: the same codes and masking as GraphQL's."""
    code = error_code(exc)
    if code == "INTERNAL":
        log.error("unexpected error in an HTTP route", exc_info=exc)
        return {"error": "Unexpected error.", "code": code}, 500
    return {"error": str(exc), "code": code}, _ROUTE_STATUS.get(code, 400)


class AtlasErrors(MaskErrors):
    """Keep expected failures (with a code), mask everything else; validation errors pass as they are."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=self._should_mask)

    @staticmethod
    def _should_mask(error: GraphQLError) -> bool:
        return error.original_error is not None and (
            isinstance(
                error.original_error, qerrors.QueryRejected
            )  # our own statement refused: a bug, not the user's input
            or not isinstance(error.original_error, (qerrors.AtlasError, GraphQLError))
        )

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        out: list[GraphQLError] = []
        for error in errors:
            orig = error.original_error
            if orig is None or isinstance(orig, GraphQLError):
                out.append(error)
            elif isinstance(orig, qerrors.AtlasError) and not isinstance(orig, qerrors.QueryRejected):
                out.append(
                    GraphQLError(
                        str(orig),
                        error.nodes,
                        error.source,
                        error.positions,
                        error.path,
                        None,
                        extensions={
                            **(error.extensions or {}),
                            "code": error_code(orig),
                            **({"uid": orig.uid} if isinstance(orig, qerrors.FeatureNotFound) else {}),
                            **({"retryAfter": orig.retry_after} if isinstance(orig, qerrors.RetryLater) else {}),
                        },
                    )
                )
            else:
                log.error("unexpected error in %s", ".".join(map(str, error.path or [])), exc_info=orig)
                out.append(
                    GraphQLError(
                        "Unexpected error.",
                        error.nodes,
                        error.source,
                        error.positions,
                        error.path,
                        None,
                        extensions={"code": "INTERNAL"},
                    )
                )
        return out


class TextLRU(Generic[V]):
    """An LRU keyed by query text, bounded by entries AND by the total length of the texts it keeps.

    Why both: a parsed document costs ~85 bytes of objects per character of query text, and one token may be
    a string of up to the body limit (1 MB), so 1024 entries alone could pin gigabytes under unique queries
    (a fuzzer, an attacker). Dashboards repeat a few short texts, which is what the cache is for.
    """

    def __init__(self, max_entries: int = 1024, max_chars: int = 1_000_000) -> None:
        self.max_entries, self.max_chars = max_entries, max_chars
        self._data: OrderedDict[tuple[str, str | None], V] = OrderedDict()
        self.chars = 0

    def get(self, key: tuple[str, str | None]) -> V | None:
        found = self._data.get(key)
        if found is not None:
            self._data.move_to_end(key)
        return found

    def put(self, key: tuple[str, str | None], value: V) -> None:
        if len(key[0]) > self.max_chars // 8 or key in self._data:
            return  # a huge text would evict everything else: not worth keeping
        self._data[key] = value
        self.chars += len(key[0])
        while len(self._data) > self.max_entries or self.chars > self.max_chars:
            (text, _), _ = self._data.popitem(last=False)
            self.chars -= len(text)

    def __len__(self) -> int:
        return len(self._data)


def atlas_extension(settings: ApiSettings) -> type[SchemaExtension]:
    """Every per-request rule of the API as ONE schema extension (strawberry pays a fixed cost per extension
    and hook on every request; five separate extensions were ~0.1 ms of a 0.3 ms request):

    - token limit, then a shared LRU of parsed documents (query text → AST);
    - validation of each distinct document once (GraphQL's rules + depth, aliases, complexity), cached:
      dashboards repeat the same documents with new variables, and every rule reads only the document,
      so the errors of a query text never change. Rule classes are built once; the LRUs (TextLRU) are bounded by entries and total text so
      unique query texts cannot grow memory without limit;
    - keys, roles, rate limits, admission control (guard.Admission) and the steering gate, before any resolver;
    - error masking (:class:`AtlasErrors`).
    """
    from graphql import parse
    from graphql.validation import NoSchemaIntrospectionCustomRule
    from strawberry.extensions.max_aliases import create_validator as alias_rule
    from strawberry.extensions.query_depth_limiter import create_validator as depth_rule
    from strawberry.schema.schema import validate_document

    rules: tuple[type[ValidationRule], ...] = (
        depth_rule(settings.max_query_depth, None),
        alias_rule(settings.max_aliases),
        complexity_rule(settings),
    )
    if not settings.introspection:
        rules = (*rules, NoSchemaIntrospectionCustomRule)
    store = KeyStore(settings.keys_file)
    limiter = RateLimiter(settings.rate_limit_per_minute)
    anon_limiter = RateLimiter(settings.anon_rate_limit_per_minute)
    steer_limiter = RateLimiter(settings.steer_rate_limit_per_minute, "steering requests")
    gate = SteerGate(settings.steer_concurrency, settings.steer_queue, settings.steer_queue_timeout_s)
    admission = Admission(
        settings.max_concurrent_requests or settings.neo4j_pool_size,
        settings.max_concurrent_heavy,
        settings.max_queued_requests,
        settings.request_queue_timeout_s,
    )
    shapes: TextLRU[tuple[tuple[str, ...], int]] = TextLRU()
    documents: TextLRU[DocumentNode] = TextLRU()
    validated: TextLRU[list[GraphQLError]] = TextLRU()

    class AtlasExtension(AtlasErrors):
        def on_operation(self) -> Iterator[None]:
            self.execution_context.parse_options["max_tokens"] = settings.max_tokens
            yield from super().on_operation()

        def on_parse(self) -> Iterator[None]:
            ec = self.execution_context
            key = (ec.query or "", None)
            doc = documents.get(key)
            if doc is None:
                doc = parse(ec.query or "", **ec.parse_options)  # a syntax error raises: nothing is cached
                documents.put(key, doc)
            ec.graphql_document = doc
            yield

        def on_validate(self) -> Iterator[None]:
            ec = self.execution_context
            key = (ec.query or "", None)
            errors = validated.get(key)
            if errors is None:
                assert ec.graphql_document is not None  # parsed before validating
                errors = validate_document(ec.schema._schema, ec.graphql_document, (*ec.validation_rules, *rules))
                validated.put(key, errors)
            ec.pre_execution_errors = list(errors)
            yield

        def _shape(self) -> tuple[tuple[str, ...], int]:
            """Root fields and graph work of the executed operation, cached per query text and operation name."""
            ec = self.execution_context
            key = (ec.query or "", ec.operation_name)
            found = shapes.get(key)
            if found is None:
                found = operation_shape(ec.graphql_document, ec.operation_name)
                shapes.put(key, found)
            return found

        async def on_execute(self) -> AsyncIterator[None]:
            ec = self.execution_context
            try:
                fields, work = self._shape()
                mutation = ec.operation_type == OperationType.MUTATION
                key = _authorise(ec.context, fields, mutation)
                principal = key.id if key else None
                if principal and limiter.rate > 0:
                    limiter.check(f"key {principal}")
                elif principal is None and anon_limiter.rate > 0:
                    anon_limiter.check(f"address {_client(ec.context)}")
                steers = sum(1 for f in fields if f == "steer") if mutation else 0
                if steers > 1:
                    raise qerrors.InvalidInput(f"one steer per request, got {steers} (send them as separate requests)")
                heavy = work >= settings.heavy_query_cost
                admitted = await admission.acquire(heavy)
            except qerrors.AtlasError as exc:
                _refuse(ec, exc)
                yield
                return
            try:
                if not steers:
                    yield
                    return
                try:
                    if steer_limiter.rate > 0:
                        steer_limiter.check(f"key {principal}" if principal else f"address {_client(ec.context)}")
                    started = await gate.acquire()
                except qerrors.AtlasError as exc:
                    _refuse(ec, exc)
                    yield
                    return
                try:
                    yield
                finally:
                    gate.release(started)
            finally:
                admission.release(heavy, admitted)

    def _authorise(context: Any, fields: tuple[str, ...], mutation: bool) -> ApiKey | None:
        """The caller's key (None when anonymous) after checking it may run these root fields."""
        token = _request_key(context)
        key = None
        if token:
            key = store.verify(token)
            if key is None and settings.api_key and hmac.compare_digest(token, settings.api_key):
                key = _LEGACY
            if key is None:
                raise qerrors.Unauthenticated(
                    "the API key is not valid or was revoked (ask an admin for a key: `atlas keys create NAME --role ...`)"
                )
        if mutation:
            if settings.mutations == "open" and key is None:
                return None
            needed = {MUTATION_ROLES.get(f, Role.ADMIN) for f in fields if f != "__typename"}
        else:
            if settings.reads == "open" or key is not None:
                return key
            needed = {Role.READ}
        if key is None:
            what = "mutations need" if mutation else "reads need"
            raise qerrors.Unauthenticated(
                f"{what} an API key with role {'/'.join(sorted(r.value for r in needed))}: "
                "send header 'X-API-Key: <key>' (or 'Authorization: Bearer <key>')"
            )
        missing = sorted(r.value for r in needed if not key.allows(r))
        if missing:
            raise qerrors.Forbidden(
                f"API key {key.id} ({key.name}) lacks role {', '.join(missing)} "
                f"(it has {', '.join(sorted(r.value for r in key.roles))}; an admin can create a key with that role)"
            )
        return key

    return AtlasExtension


def schema_extensions(settings: ApiSettings) -> list[Any]:
    # A class, so every request gets a fresh instance (the caches live in the closure, shared).
    return [atlas_extension(settings)]
