"""Per-request context: the shared async graph, settings, and this request's DataLoaders (no N+1).

A DataLoader batches every ``feature(uid)``/``predecessors``/``successors`` lookup made while resolving
one request into one ``UNWIND $uids`` statement per distinct parameter set. Feature look-ups go further
when the app passes its :class:`~atlas_api.coalesce.Coalescer`: one statement for every request's look-ups
of the same event-loop turn (atlas_api/coalesce.py says why).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from strawberry.dataloader import DataLoader

from atlas_api.coalesce import Coalescer
from atlas_api.settings import ApiSettings
from queries import features as qf
from queries import neuronpedia as qnp
from queries.aio import AsyncGraph
from queries.replicas import ReplicatedAsyncGraph

if TYPE_CHECKING:
    from atlas_api.steer_mutation import Steerers
    from steering.protocol import SteerRunner


@dataclass
class Context:
    graph: AsyncGraph | ReplicatedAsyncGraph
    settings: ApiSettings
    request: Request | None = None
    response: Any = None
    # What runs `steer` (a steering.service.Steerer or a client of a steering worker) when the app was given one;
    steerer: SteerRunner | None = None
    steerers: Steerers | None = (
        None  # else the app's atlas_api.steer_mutation.Steerers (built at start-up from its settings)
    )
    features: Coalescer[str, dict[str, Any] | None] | None = None  # the app's, shared by concurrent requests
    _neighbour_loaders: dict[tuple[str, float, int | None], DataLoader[str, list[dict[str, Any]]]] = field(
        default_factory=dict
    )
    feature_loader: DataLoader[str, dict[str, Any] | None] | Coalescer[str, dict[str, Any] | None] = field(init=False)
    neuronpedia_loader: DataLoader[str, str | None] = field(init=False)
    details_loader: DataLoader[str, dict[str, Any] | None] = field(init=False)

    def __post_init__(self) -> None:
        self.feature_loader = self.features or DataLoader(load_fn=self._load_features)
        self.neuronpedia_loader = DataLoader(load_fn=self._load_neuronpedia_ids)
        self.details_loader = DataLoader(load_fn=self._load_details)

    async def read(self, text: Any, params: Any = None) -> list[dict[str, Any]]:
        return await self.graph.read(text, params, timeout=self.settings.query_timeout_s)

    async def _load_features(self, uids: list[str]) -> list[dict[str, Any] | None]:
        rows = await self.read(qf.FEATURES_BY_UID, {"uids": list(uids)})
        found = {r["f"]["uid"]: r["f"] for r in rows}
        return [found.get(u) for u in uids]

    async def _load_neuronpedia_ids(self, keys: list[str]) -> list[str | None]:
        rows = await self.read(qnp.NEURONPEDIA_IDS, {"keys": list(keys)})
        found = {r["key"]: r["neuronpedia_id"] or None for r in rows}
        return [found.get(k) for k in keys]

    async def neuronpedia_ids(self, keys: list[str]) -> dict[str, str | None]:
        """Neuronpedia ids of SAEs by key (null where an SAE has none), batched per request."""
        values = await self.neuronpedia_loader.load_many(keys)
        return dict(zip(keys, values))

    async def _load_details(self, uids: list[str]) -> list[dict[str, Any] | None]:
        rows = await self.read(qf.FEATURE_DETAILS_BY_UID, {"uids": list(uids)})
        found = {r["key"]: r for r in rows}
        return [found.get(u) for u in uids]

    async def neighbours(self, kind: str, uid: str, min_similarity: float, top_k: int | None) -> list[dict[str, Any]]:
        key = (kind, float(min_similarity), top_k)
        loader = self._neighbour_loaders.get(key)
        if loader is None:
            statement = qf.PREDECESSORS if kind == "pred" else qf.SUCCESSORS

            async def load(uids: list[str]) -> list[list[dict[str, Any]]]:
                rows = await self.read(statement, {"uids": list(uids), "min_sim": float(min_similarity), "k": top_k})
                by_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
                for r in rows:
                    by_key[r["key"]].append(r)
                return [by_key.get(u, []) for u in uids]

            loader = self._neighbour_loaders[key] = DataLoader(load_fn=load)
        return await loader.load(uid)
