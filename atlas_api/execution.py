"""How the API runs a GraphQL operation: strawberry's pipeline, minus its generic costs where they buy nothing.

Two shortcuts, both measured (docs/api.md "Benchmark"), both keeping every rule of atlas_api.policy:

- **Known query texts skip strawberry's per-request pipeline.** Dashboards send the same few documents with new
  variables. Once a text has parsed and validated without errors (the caches of :class:`RequestPolicy`), a
  later request with that text runs graphql-core's ``execute`` on the cached document directly, with the
  same key/role/rate checks and admission (:meth:`RequestPolicy.admit`) and the same error masking. What it
  skips is strawberry's extension runner and operation set-up, ~0.1 ms of a ~0.25 ms ``feature`` request.
  Mutations, new texts, texts with errors and requests with protocol extensions take the full pipeline.
- **Objects whose selected fields are all plain attributes are completed in one step.** graphql-core resolves
  and completes every leaf field on its own (resolve info, path, argument check, completion): ~5 µs a field,
  a few ms for a lineage of a hundred nodes. :class:`LeafExecutor` reads such fields straight off the object and
  serialises them with the field's own scalar or enum type; any field that is not a plain attribute, any null
  in a non-null field or any value its type refuses sends the whole object back to graphql-core, which
  reports it exactly as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import strawberry
from graphql import GraphQLObjectType, execute, is_leaf_type, is_non_null_type
from graphql.pyutils import Undefined
from strawberry.execution.is_awaitable import optimized_is_awaitable
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType
from strawberry.utils.await_maybe import await_maybe

from atlas_api.errors import mask_errors, refusal
from atlas_api.policy import RequestPolicy, atlas_extension
from queries import errors as qerrors

# A plain leaf field: (response key, strawberry's attribute getter, the type's serialiser, non-null), or
# (response key, None, the parent type's name, True) for __typename.
_Leaf = tuple[str, Callable[..., Any] | None, Any, bool]


class LeafExecutor(StrawberryGraphQLCoreExecutionContext):
    """graphql-core's executor with one step for objects whose every selected field is a plain leaf attribute."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # (parent type, id(field set)) -> (the field set, kept alive so its id stays unique; its plan or None)
        self._plans: dict[tuple[GraphQLObjectType, int], tuple[Any, list[_Leaf] | None]] = {}

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Any,
        grouped_field_set: Any,
        position_context: Any,
    ) -> Any:
        key = (parent_type, id(grouped_field_set))
        cached = self._plans.get(key)
        if cached is None:
            cached = self._plans[key] = (grouped_field_set, self._leaf_plan(parent_type, grouped_field_set))
        plan = cached[1]
        if plan is not None:
            out = self._complete_leaves(plan, source_value)
            if out is not None:
                return out
        return super().execute_fields(parent_type, source_value, path, grouped_field_set, position_context)

    def _leaf_plan(self, parent_type: GraphQLObjectType, grouped_field_set: Any) -> list[_Leaf] | None:
        if self.middleware_manager is not None and getattr(self.middleware_manager, "middlewares", None):
            return None
        plan: list[_Leaf] = []
        for response_key, details in grouped_field_set.items():
            if any(d.node.arguments or d.node.directives for d in details):
                return None
            node = details[0].node
            name = node.name.value
            if name == "__typename":
                plan.append((response_key, None, parent_type.name, True))
                continue
            field = parent_type.fields.get(name)
            if field is None or field.args or not getattr(field.resolve, "_is_default", False):
                return None  # a resolver of ours, or strawberry's with extensions or permissions
            non_null = is_non_null_type(field.type)
            leaf = field.type.of_type if non_null else field.type
            if not is_leaf_type(leaf):
                return None
            plan.append((response_key, field.resolve, leaf.serialize, non_null))
        return plan

    @staticmethod
    def _complete_leaves(plan: list[_Leaf], source: Any) -> dict[str, Any] | None:
        """The completed object, or None when graphql-core must do it (to report a null or refused value)."""
        out: dict[str, Any] = {}
        try:
            for response_key, get, serialize, non_null in plan:
                if get is None:
                    out[response_key] = serialize  # __typename
                    continue
                value = get(source, None)
                if value is None:
                    if non_null:
                        return None
                    out[response_key] = None
                    continue
                serialised = serialize(value)
                if serialised is None or serialised is Undefined:
                    return None
                out[response_key] = serialised
        except Exception:  # noqa: BLE001 - graphql-core runs it again and reports the error where it belongs
            return None
        return out


class AtlasSchema(strawberry.Schema):
    """strawberry's Schema with the direct path for known query texts (module docstring) and :class:`LeafExecutor`."""

    def __init__(self, *, query: Any, mutation: Any, policy: RequestPolicy) -> None:
        self.direct = policy.settings.direct_execution
        super().__init__(
            query=query,
            mutation=mutation,
            extensions=[atlas_extension(policy)],
            execution_context_class=LeafExecutor if self.direct else None,
        )
        self.policy = policy

    async def execute(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        known = (
            self.policy.known_query(query, operation_name)
            if self.direct
            and query
            and not operation_extensions
            and (allowed_operation_types is None or OperationType.QUERY in allowed_operation_types)
            else None
        )
        if known is None:
            return await super().execute(
                query,
                variable_values,
                context_value,
                root_value,
                operation_name,
                allowed_operation_types,
                operation_extensions,
            )
        try:
            release = await self.policy.admit(context_value, known.fields, known.work, mutation=False)
        except qerrors.AtlasError as exc:
            refused = refusal(context_value, exc)
            return ExecutionResult(data=None, errors=refused.errors)
        try:
            result = await await_maybe(
                execute(
                    self._schema,
                    known.document,
                    root_value=root_value,
                    context_value=context_value,
                    variable_values=variable_values,
                    operation_name=known.operation_name,
                    executor_class=LeafExecutor,
                    is_awaitable=optimized_is_awaitable,  # type: ignore[arg-type]  # strawberry's own check
                )
            )
        finally:
            release()
        errors = result.errors
        if errors:
            self._process_errors(errors)  # strawberry's logging (and suggestion removal), as its pipeline does
            errors = mask_errors(errors)
        return ExecutionResult(data=result.data, errors=errors)
