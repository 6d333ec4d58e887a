"""What ``atlas cypher`` lets an analyst run, beyond what a READ transaction already refuses.

A READ transaction makes the server refuse every write (CREATE/MERGE/SET/DELETE, ``CALL { ... }`` and
``FOREACH`` that write, write procedures, schema and user changes). It still allows things that read
*outside* the graph or reach other users: ``LOAD CSV`` (files in the server's import folder, and URLs the
server fetches for you), ``SHOW TRANSACTIONS`` (other users' statements) and ``TERMINATE TRANSACTIONS``,
``SHOW SETTINGS``, administration commands such as ``SHOW USERS``, and DBMS procedures
(``dbms.listConfig``, ``db.clearQueryCaches``). Those are refused here, from the statement's plan
(``EXPLAIN``: nothing runs), before the statement runs. For a hard boundary give analysts their own
Neo4j user with the ``reader`` role (docs/api.md, "Read-only Cypher for analysts").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from queries.db import Graph
from queries.errors import InvalidInput

# Operators a READ transaction allows but an analyst's query has no business running.
REFUSED_OPERATORS: dict[str, str] = {
    "LoadCSV": "LOAD CSV reads files and URLs on the database server",
    "TerminateTransactions": "TERMINATE TRANSACTIONS stops other users' work",
    "ShowTransactions": "SHOW TRANSACTIONS shows other users' statements",
    "ShowSettings": "SHOW SETTINGS shows the server's configuration",
    "AdministrationCommand": "administration commands (users, roles, databases) are for the database's admin",
}
# Read procedures an analyst may call (everything else, dbms.* included, is refused).
ALLOWED_PROCEDURES = frozenset(
    {
        "db.labels",
        "db.relationshipTypes",
        "db.propertyKeys",
        "db.schema.visualization",
        "db.schema.nodeTypeProperties",
        "db.schema.relTypeProperties",
        "db.index.fulltext.queryNodes",
        "db.index.fulltext.queryRelationships",
        "db.index.vector.queryNodes",
        "db.info",
        "db.ping",
    }
)


def check_analyst_statement(graph: Graph, text: str, params: Mapping[str, Any] | None = None) -> None:
    """Raise InvalidInput naming what is refused when ``text``'s plan reads outside the graph or touches other users."""
    for op, details in graph.plan(text, params):  # the analyst's own text, only explained
        if op in REFUSED_OPERATORS:
            raise InvalidInput(
                f"atlas cypher refuses this statement: {REFUSED_OPERATORS[op]}; query the graph with MATCH instead"
            )
        if op == "ProcedureCall":
            name = details.split("(", 1)[0].strip()
            if name not in ALLOWED_PROCEDURES:
                raise InvalidInput(
                    f"atlas cypher refuses procedure {name!r} (allowed: {', '.join(sorted(ALLOWED_PROCEDURES))})"
                )
