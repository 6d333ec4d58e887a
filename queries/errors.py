"""The project's one exception tree.

Every expected failure raises a subclass of :class:`AtlasError` whose message says what failed, the
offending value, what would be valid and how to fix it, e.g.
``layer 31 is out of range for atlas smollm2-demo (valid: 0–29)``. The CLI prints that one line and exits 1;
the API maps the subclasses onto typed GraphQL results. Anything else is a bug and is masked.
"""

from __future__ import annotations


class AtlasError(Exception):
    """An expected failure with a message fit to show a user as is."""


class InvalidInput(AtlasError):
    """A value given by the user (argument, manifest entry, file) is not acceptable."""


class QueryTimeout(InvalidInput):
    """A statement ran past its server-side timeout (usually a too-broad query)."""


class QueryRejected(AtlasError):
    """Neo4j refused a statement (syntax, a write in a read transaction, a bad full-text query...).

    ``code`` is the server's status code (e.g. ``Neo.ClientError.Statement.SyntaxError``), ``server_message``
    its own words. Only a caller that passed user text (``atlas cypher``, full-text search) knows it is the
    user's fault and re-raises it as InvalidInput naming the fix; anywhere else it is a bug in our own
    statement, and the API masks it like any unexpected error.
    """

    def __init__(self, code: str, server_message: str) -> None:
        self.code = code
        self.server_message = server_message
        super().__init__(f"Neo4j refused the statement: {server_message}")


class GraphSchemaError(InvalidInput):
    """An attribution-graph JSON does not follow the published schema; the message starts with the offending path."""


class ReplicaMismatch(InvalidInput):
    """A read server holds a different version of an atlas than the reference server."""


class UnsupportedArchitecture(InvalidInput):
    """The model's architecture has no known res/att/mlp hook mapping."""


class ManifestError(InvalidInput):
    """``atlas.toml`` is malformed or inconsistent."""


class SAEFileError(InvalidInput):
    """An SAE source is missing, corrupt, or does not fit the atlas."""


class NotFound(AtlasError):
    """Something named by the user does not exist."""


class AtlasNotFound(NotFound):
    def __init__(self, atlas: str, known: list[str] | None = None) -> None:
        self.atlas = atlas
        hint = (
            f" (known atlases: {', '.join(sorted(known))})"
            if known
            else " (no atlas has been ingested yet: run `atlas ingest atlas.toml`)"
        )
        super().__init__(f"atlas {atlas!r} does not exist{hint}")


class FeatureNotFound(NotFound):
    def __init__(self, uid: str, reason: str | None = None) -> None:
        self.uid = uid
        super().__init__(
            reason or f"feature {uid!r} does not exist in the graph (check the atlas name, layer, module and index)"
        )


class GraphNotFound(NotFound):
    def __init__(self, graph_id: str) -> None:
        self.graph_id = graph_id
        super().__init__(f"attribution graph {graph_id!r} is not stored (list them with `atlas graphs list`)")


class DatabaseUnavailable(AtlasError):
    """Neo4j cannot be reached or stopped answering."""


class RetryLater(AtlasError):
    """A refusal to try again later, not a failure of the request: ``retry_after`` seconds (a whole number ≥ 1)."""

    def __init__(self, message: str, retry_after: float) -> None:
        self.retry_after = max(1, round(retry_after + 0.5))
        super().__init__(f"{message}; retry after {self.retry_after} s")


class DatabaseBusy(DatabaseUnavailable, RetryLater):
    """Neo4j is up but every pooled connection stayed in use for the acquisition timeout (overload, not an outage)."""


class Overloaded(RetryLater):
    """The API is at its admission limit and a request waited in its queue too long."""


class CorpusUnavailable(AtlasError):
    """The default corpus could not be downloaded and no local corpus was given."""


class ModelUnavailable(AtlasError):
    """The language model needed for steering/training cannot be loaded."""


class Unauthenticated(AtlasError):
    """A request that needs an API key came without a valid one."""


class Forbidden(AtlasError):
    """The API key is valid but lacks the role the request needs."""


class RateLimited(RetryLater):
    """Too many requests for this key (or, for steering, too many waiting): retry after ``retry_after`` seconds."""


class SteerBusy(RateLimited):
    """Every steering slot is busy and the queue is full (or the wait timed out)."""
