"""What a GraphQL operation costs, read from its document before anything runs.

- :func:`complexity_rule`: the validation rule that refuses a query whose estimate is over ``max_complexity``
  (each field costs 1, graph-building fields cost more, list fields multiply their children by their page size);
- :func:`operation_shape`: the root fields of the operation run and the graph work they ask of Neo4j (the
  admission control's "heavy" test, atlas_api.guard).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphql import (
    DocumentNode,
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

from atlas_api.settings import ApiSettings

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
    "page": 5,  # Feature.page: a stored page of a few kB (histograms, 25 examples, logit lens) per feature
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


def operation_shape(doc: Any, operation_name: str | None) -> tuple[tuple[str, ...], int]:
    """The executed operation's top-level field names (through fragments), e.g. ("setLabel",), and the graph work
    they ask of Neo4j: the sum of their own costs (``circuit`` 100, ``lineage`` 50, a plain read 1), without the
    page-size multipliers of the complexity limit, which measure the answer's size rather than Neo4j's work."""
    frags = {d.name.value: d for d in doc.definitions if isinstance(d, FragmentDefinitionNode)} if doc else {}
    op = operation_definition(doc, operation_name) if doc else None
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


def operation_definition(doc: DocumentNode, operation_name: str | None) -> OperationDefinitionNode | None:
    """The operation named, or the first one when no name is given (strawberry runs that one)."""
    ops = [d for d in doc.definitions if isinstance(d, OperationDefinitionNode)]
    return next((o for o in ops if operation_name is None or (o.name and o.name.value == operation_name)), None)
