"""The per-request policy of the API: parse and validation caches, limits, keys, rates and admission, in one
:class:`RequestPolicy` read by both ways a request runs: strawberry's pipeline (through the one schema extension
:func:`atlas_extension`) and the direct path for known query texts (atlas_api.execution).

- depth, aliases and tokens: strawberry's limiters; complexity: atlas_api.cost.
- keys and roles (atlas_api.keys): mutations need a key with their role (unless mutations are open),
  reads too when ``reads = "keyed"``; per-key rate limits and the steering gate (atlas_api.guard). All
  of it runs before any resolver; refusals are typed errors with an HTTP status (401/403/429).
- admission: at most ``max_concurrent_requests`` operations execute at once (heavy ones, by graph work, fewer);
  the rest queue and are refused only after ``request_queue_timeout_s`` with OVERLOADED (503, retryAfter).
- errors: atlas_api.errors (codes and masking).
"""

from __future__ import annotations

import hmac
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from graphql import DocumentNode, GraphQLError, OperationDefinitionNode, parse
from graphql.validation import ValidationRule
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document
from strawberry.types.graphql import OperationType

from atlas_api.cost import complexity_rule, operation_definition, operation_shape
from atlas_api.errors import AtlasErrors, refusal
from atlas_api.guard import Admission, RateLimiter, SteerGate
from atlas_api.keys import MUTATION_ROLES, ApiKey, KeyStore, Role
from atlas_api.settings import ApiSettings
from queries import errors as qerrors

V = TypeVar("V")


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


@dataclass(frozen=True)
class KnownQuery:
    """A query text that parsed and validated without errors before: what running it again needs."""

    document: DocumentNode
    operation_name: str | None  # the one to run: as given, else the first operation's (as strawberry does)
    fields: tuple[str, ...]  # root field names (operation_shape)
    work: int  # graph work of those fields (operation_shape)


class RequestPolicy:
    """Every per-request rule of the API, in one place for both ways a request runs: strawberry's pipeline
    (through :func:`atlas_extension`) and the direct path for known query texts (atlas_api.execution).

    - token limit, then a shared LRU of parsed documents (query text → AST);
    - validation of each distinct document once (GraphQL's rules + depth, aliases, complexity), cached:
      dashboards repeat the same documents with new variables, and every rule reads only the document,
      so the errors of a query text never change. Rule classes are built once; the LRUs (TextLRU) are
      bounded by entries and total text so unique query texts cannot grow memory without limit;
    - keys, roles, rate limits, admission control (guard.Admission) and the steering gate, before any resolver
      (:meth:`admit`);
    - error masking (:func:`mask_errors`).
    """

    def __init__(self, settings: ApiSettings) -> None:
        from graphql.validation import NoSchemaIntrospectionCustomRule
        from strawberry.extensions.max_aliases import create_validator as alias_rule
        from strawberry.extensions.query_depth_limiter import create_validator as depth_rule

        self.settings = settings
        rules: tuple[type[ValidationRule], ...] = (
            depth_rule(settings.max_query_depth, None),
            alias_rule(settings.max_aliases),
            complexity_rule(settings),
        )
        if not settings.introspection:
            rules = (*rules, NoSchemaIntrospectionCustomRule)
        self.rules = rules
        self._store = KeyStore(settings.keys_file)
        self._limiter = RateLimiter(settings.rate_limit_per_minute)
        self._anon_limiter = RateLimiter(settings.anon_rate_limit_per_minute)
        self._steer_limiter = RateLimiter(settings.steer_rate_limit_per_minute, "steering requests")
        self._gate = SteerGate(settings.steer_concurrency, settings.steer_queue, settings.steer_queue_timeout_s)
        self._admission = Admission(
            settings.max_concurrent_requests or settings.neo4j_pool_size,
            settings.max_concurrent_heavy,
            settings.max_queued_requests,
            settings.request_queue_timeout_s,
        )
        self._shapes: TextLRU[tuple[tuple[str, ...], int, OperationDefinitionNode | None]] = TextLRU()
        self._documents: TextLRU[DocumentNode] = TextLRU()
        self._validated: TextLRU[list[GraphQLError]] = TextLRU()

    def document(self, query: str, parse_options: Mapping[str, Any]) -> DocumentNode:
        """The parsed document of ``query`` (cached); a syntax error or too many tokens raises, nothing cached."""
        key = (query, None)
        doc = self._documents.get(key)
        if doc is None:
            doc = parse(query, **{**parse_options, "max_tokens": self.settings.max_tokens})
            self._documents.put(key, doc)
        return doc

    def validation_errors(self, schema: Any, doc: DocumentNode, query: str, base_rules: Any) -> list[GraphQLError]:
        """GraphQL's rules (``base_rules``) and ours on ``doc``, once per query text."""
        key = (query, None)
        errors = self._validated.get(key)
        if errors is None:
            errors = validate_document(schema, doc, (*base_rules, *self.rules))
            self._validated.put(key, errors)
        return list(errors)

    def shape(
        self, query: str, operation_name: str | None, doc: DocumentNode
    ) -> tuple[tuple[str, ...], int, OperationDefinitionNode | None]:
        """Root fields, graph work and the definition of the operation run; per text and operation name."""
        key = (query, operation_name)
        found = self._shapes.get(key)
        if found is None:
            fields, work = operation_shape(doc, operation_name)
            found = (fields, work, operation_definition(doc, operation_name))
            self._shapes.put(key, found)
        return found

    def known_query(self, query: str, operation_name: str | None) -> KnownQuery | None:
        """The query text's document if it parsed and validated without errors before and names a query
        operation (not a mutation or subscription); else None, and the request takes strawberry's pipeline."""
        key = (query, None)
        errors = self._validated.get(key)
        doc = self._documents.get(key)
        if errors is None or errors or doc is None:
            return None
        fields, work, op = self.shape(query, operation_name, doc)
        if op is None or op.operation.value != "query" or not fields:
            return None
        return KnownQuery(doc, op.name.value if op.name else None, fields, work)

    async def admit(self, context: Any, fields: tuple[str, ...], work: int, mutation: bool) -> Callable[[], None]:
        """Check the caller's key, roles and rates, then wait for admission (and, for ``steer``, the steering
        gate). Returns the function that releases what was taken; raises a typed AtlasError, holding nothing,
        when the request is refused."""
        key = self._authorise(context, fields, mutation)
        principal = key.id if key else None
        if principal and self._limiter.rate > 0:
            self._limiter.check(f"key {principal}")
        elif principal is None and self._anon_limiter.rate > 0:
            self._anon_limiter.check(f"address {_client(context)}")
        steers = sum(1 for f in fields if f == "steer") if mutation else 0
        if steers > 1:
            raise qerrors.InvalidInput(f"one steer per request, got {steers} (send them as separate requests)")
        heavy = work >= self.settings.heavy_query_cost
        admitted = await self._admission.acquire(heavy)
        if not steers:
            return lambda: self._admission.release(heavy, admitted)
        try:
            if self._steer_limiter.rate > 0:
                self._steer_limiter.check(f"key {principal}" if principal else f"address {_client(context)}")
            started = await self._gate.acquire()
        except BaseException:
            self._admission.release(heavy, admitted)
            raise

        def release() -> None:
            try:
                self._gate.release(started)
            finally:
                self._admission.release(heavy, admitted)

        return release

    def _authorise(self, context: Any, fields: tuple[str, ...], mutation: bool) -> ApiKey | None:
        """The caller's key (None when anonymous) after checking it may run these root fields."""
        settings = self.settings
        token = _request_key(context)
        key = None
        if token:
            key = self._store.verify(token)
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


def atlas_extension(policy: RequestPolicy) -> type[SchemaExtension]:
    """The policy as ONE strawberry schema extension (strawberry pays a fixed cost per extension and hook on
    every request; five separate extensions were ~0.1 ms of a 0.3 ms request)."""

    class AtlasExtension(AtlasErrors):
        def on_parse(self) -> Iterator[None]:
            ec = self.execution_context
            ec.graphql_document = policy.document(ec.query or "", ec.parse_options)
            yield

        def on_validate(self) -> Iterator[None]:
            ec = self.execution_context
            assert ec.graphql_document is not None  # parsed before validating
            ec.pre_execution_errors = policy.validation_errors(
                ec.schema._schema, ec.graphql_document, ec.query or "", ec.validation_rules
            )
            yield

        async def on_execute(self) -> AsyncIterator[None]:
            ec = self.execution_context
            assert ec.graphql_document is not None
            try:
                fields, work, _ = policy.shape(ec.query or "", ec.operation_name, ec.graphql_document)
                release = await policy.admit(ec.context, fields, work, ec.operation_type == OperationType.MUTATION)
            except qerrors.AtlasError as exc:
                ec.result = refusal(ec.context, exc)
                yield
                return
            try:
                yield
            finally:
                release()

    return AtlasExtension
