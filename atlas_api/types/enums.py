"""The API's enums: the domain's own (queries.domain) registered as GraphQL enums, and the sort direction."""

from __future__ import annotations

import enum

import strawberry

from queries.domain import Category, Module
from queries.domain import Direction as LineageDirection

# strawberry.enum marks the class itself (and returns it), so the domain classes ARE the GraphQL enums.
strawberry.enum(
    Module,
    name="Module",
    description="Where in layer L an SAE reads: residual stream after the block, attention output, MLP output.",
)
strawberry.enum(
    Category, name="Category", description="The paper's semantic categories of a residual feature (paper §2.1)."
)
strawberry.enum(LineageDirection, name="LineageDirection")

__all__ = ["Category", "LineageDirection", "Module", "SortDirection"]


@strawberry.enum
class SortDirection(enum.Enum):
    ASC = "ASC"
    DESC = "DESC"
