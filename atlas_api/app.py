"""The ASGI app: GraphQL (+ GraphiQL) at /graphql, /healthz, /readyz, flow-graph export, CORS, and the
dashboard's built assets at / (atlas_api/dashboard_dist, built by deploy/install.sh from dashboard/).

One :class:`queries.aio.AsyncGraph` (connection pool) per process, opened in the lifespan. If Neo4j is
down at start-up or restarts later, the app keeps serving: requests that need the database get a
DATABASE_UNAVAILABLE error and /readyz answers 503 until the driver reconnects by itself.
"""

from __future__ import annotations

import contextlib
import gc
import hmac
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLRequestData

from atlas_api.coalesce import Coalescer
from atlas_api.context import Context
from atlas_api.errors import http_error
from atlas_api.keys import KeyStore
from atlas_api.schema import build_schema
from atlas_api.settings import ApiSettings
from atlas_api.steer_mutation import Steerers
from queries import errors as qerrors
from queries import features as qf
from queries import neuronpedia as qnp
from queries.domain import MODULE_CUT, RESIDUAL_CUT, Direction
from queries.flow_graph import FlowOptions, build_flow_graph_async
from queries.replicas import ReplicatedAsyncGraph, open_async_graph
from queries.settings import Neo4jSettings
from steering.protocol import SteerRunner

log = logging.getLogger(__name__)

# Built by `npm run build` in dashboard/ (deploy/install.sh does it); not committed.
DASHBOARD_DIR = Path(__file__).resolve().parent / "dashboard_dist"
_NO_DASHBOARD = (
    "<!doctype html><meta charset=utf-8><title>Feature Atlas</title>"
    "<h1>The dashboard is not built</h1><p>Build it with <code>bash deploy/install.sh</code> "
    "(or <code>cd dashboard &amp;&amp; npm ci &amp;&amp; npm run build</code>), then reload. "
    "The API itself works: <a href=/graphql>/graphql</a>.</p>"
)


class _GraphQL(GraphQL):
    def __init__(self, app_state: dict[str, Any], settings: ApiSettings, steerers: Steerers, **kw: Any) -> None:
        ide: Literal["graphiql"] | None = (
            "graphiql" if settings.graphiql and settings.introspection else None
        )  # GraphiQL needs introspection
        super().__init__(build_schema(settings), graphql_ide=ide, **kw)
        self._state = app_state
        self._settings = settings
        self._steerers = steerers

    async def get_context(self, request: Any, response: Any) -> Context:  # type: ignore[override]
        return Context(
            graph=self._state["graph"],
            settings=self._settings,
            request=request,
            response=response,
            steerer=self._state.get("steerer"),
            steerers=self._steerers,
            features=self._state["features"],
        )

    async def parse_http_body(self, request: Any) -> Any:
        """The common request (POST application/json, one operation, no streaming Accept) without strawberry's
        generic path, which parses Content-Type with the email package on every request; else as strawberry."""
        accept = request.headers.get("accept", "")
        if (
            request.method == "POST"
            and request.content_type == "application/json"
            and "multipart" not in accept
            and "event-stream" not in accept
        ):
            data = self.parse_json(await request.get_body())
            if (
                isinstance(data, dict)
                and isinstance(data.get("query"), str)
                and isinstance(data.get("variables") or {}, dict)
                and isinstance(data.get("extensions") or {}, dict)
            ):
                return GraphQLRequestData(
                    query=data["query"],
                    variables=data.get("variables"),
                    operation_name=data.get("operationName"),
                    extensions=data.get("extensions"),
                )
        return await super().parse_http_body(request)  # the body is cached: it can be read again


def create_app(
    settings: ApiSettings | None = None,
    neo4j_settings: Neo4jSettings | None = None,
    *,
    steerer: SteerRunner | None = None,
) -> AtlasApp:
    """``steerer``: what runs ``steer`` (a :class:`steering.protocol.SteerRunner`); None = the process-wide Steerer."""
    settings = settings or ApiSettings()
    neo = (neo4j_settings or Neo4jSettings()).model_copy(update={"query_timeout_s": settings.query_timeout_s})
    state: dict[str, Any] = {"steerer": steerer}

    async def fetch_features(uids: list[str]) -> list[dict[str, Any] | None]:
        rows = await state["graph"].read(qf.FEATURES_BY_UID, {"uids": uids}, timeout=settings.query_timeout_s)
        found = {r["f"]["uid"]: r["f"] for r in rows}
        return [found.get(u) for u in uids]

    state["features"] = Coalescer(fetch_features) if settings.coalesce_lookups else None

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        state["graph"] = open_async_graph(neo, max_pool_size=settings.neo4j_pool_size)
        try:
            await state["graph"].verify()
        except qerrors.DatabaseUnavailable as exc:
            log.warning("starting without Neo4j (requests will fail until it answers): %s", exc)
        # The start-up heap (schema, strawberry/graphql-core types, driver) is ~100k long-lived objects that
        # every full collection would rescan: a 50 ms pause on the event loop that shows up as p99 latency.
        # Freezing moves them out of the collector's generations; later garbage is collected as usual.
        gc.collect()
        gc.freeze()
        yield
        await state["graph"].close()

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        graph = state["graph"]
        extra = {"read_servers": graph.status()} if isinstance(graph, ReplicatedAsyncGraph) else {}
        try:
            await graph.read("RETURN 1 AS ok", timeout=2.0)
        except qerrors.AtlasError as exc:
            return JSONResponse({"status": "unavailable", "neo4j": str(exc), **extra}, status_code=503)
        return JSONResponse({"status": "ready", "neo4j": neo.uri, **extra})

    store = KeyStore(settings.keys_file)

    async def export(request: Request) -> Response:
        """GET /export/lineage?uid=...&format=json|circuit-tracer[&direction=&depth=&minSimilarity=...]"""
        q = request.query_params
        if settings.reads == "keyed":
            token = (
                request.headers.get("x-api-key")
                or request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            )
            if not token or (
                store.verify(token) is None and not (settings.api_key and hmac.compare_digest(token, settings.api_key))
            ):
                return JSONResponse(
                    {"error": "reads need a valid API key: send header 'X-API-Key: <key>'", "code": "UNAUTHENTICATED"},
                    status_code=401,
                )
        try:
            fmt = q.get("format", "json")
            if fmt not in ("json", "circuit-tracer"):
                raise qerrors.InvalidInput(f"unknown export format {fmt!r} (valid: json, circuit-tracer)")
            if "uid" not in q:
                raise qerrors.InvalidInput("give the feature: /export/lineage?uid=atlas/12-res/77")
            try:
                opts = FlowOptions(
                    direction=Direction(q.get("direction", "upstream").lower()),
                    depth=int(q["depth"]) if q.get("depth") else None,
                    min_similarity=float(q.get("minSimilarity", RESIDUAL_CUT)),
                    module_min_similarity=float(q.get("moduleMinSimilarity", MODULE_CUT)),
                    top_k=int(q.get("topK", 1)),
                    max_nodes=settings.max_flow_nodes,
                )
            except ValueError as exc:
                raise qerrors.InvalidInput(
                    f"bad export parameter ({exc}); valid: direction=upstream|downstream|both, depth, minSimilarity, moduleMinSimilarity, topK"
                ) from None
            g = await build_flow_graph_async(
                lambda t, p: state["graph"].read(t, p, timeout=settings.query_timeout_s),
                q["uid"],
                opts,
                atlas=q.get("atlas"),
            )
            if fmt == "circuit-tracer":
                rows = await state["graph"].read(
                    qnp.NEURONPEDIA_IDS, {"keys": g.sae_keys()}, timeout=settings.query_timeout_s
                )
                body = g.to_circuit_tracer(neuronpedia={r["key"]: r["neuronpedia_id"] for r in rows})
            else:
                body = g.to_json()
        except qerrors.AtlasError as exc:  # the same codes as GraphQL's extensions.code (atlas_api.errors)
            payload, status = http_error(exc)
            return JSONResponse(payload, status_code=status)
        name = g.seeds[0].replace("/", "_") + (".circuit-tracer" if fmt == "circuit-tracer" else "") + ".json"
        return JSONResponse(body, headers={"Content-Disposition": f'attachment; filename="{name}"'})

    async def dashboard(_: Request) -> Response:
        index = DASHBOARD_DIR / "index.html"
        if not index.is_file():
            return HTMLResponse(_NO_DASHBOARD, status_code=503)
        return FileResponse(index, headers={"Cache-Control": "no-cache"})

    gql = _GraphQL(state, settings, Steerers(settings, neo))
    middleware = []
    cors: dict[str, Any] = {}
    if settings.cors_origins:
        cors = {
            "allow_origins": settings.cors_origins,
            "allow_methods": ["GET", "POST", "OPTIONS"],
            "allow_headers": ["content-type", "authorization", "x-api-key"],
            "max_age": 600,
        }
        middleware.append(Middleware(CORSMiddleware, **cors))
    site = Starlette(
        routes=[
            Route("/graphql", gql, methods=["GET", "POST"]),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/export/lineage", export),
            Route("/", dashboard),
            Mount("/assets", app=StaticFiles(directory=DASHBOARD_DIR / "assets", check_dir=False), name="assets"),
        ],
        middleware=middleware,
        lifespan=lifespan,
    )
    return AtlasApp(site, CORSMiddleware(gql, **cors) if cors else gql, settings.max_body_bytes)


class AtlasApp:
    """The ASGI entry point: POST /graphql goes straight to the GraphQL view (with CORS when configured);
    everything else — GET /graphql (GraphiQL), /healthz, /readyz, /export, lifespan — through Starlette.

    Starlette's error middleware and router cost ~0.05 ms of a ~0.8 ms GraphQL request on a 2-core machine
    and add nothing for it: the view answers its own HTTP errors, and uvicorn turns a crash into a 500.
    """

    def __init__(self, site: Starlette, graphql: Any, max_body_bytes: int = 1_000_000) -> None:
        self.site = site
        self.graphql = graphql
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] not in ("GET", "HEAD", "OPTIONS"):
            receive = await self._bounded(scope, receive, send)
            if receive is None:
                return
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == "/graphql":
            await self.graphql(scope, receive, send)
        else:
            await self.site(scope, receive, send)

    async def _bounded(self, scope: Any, receive: Any, send: Any) -> Any:
        """``receive`` if the body fits ``max_body_bytes`` (else answer 413 and return None). A declared
        Content-Length is checked up front (the server enforces it); a chunked body is read and replayed."""
        length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if length is not None:
            if not length.isdigit() or int(length) <= self.max_body_bytes:
                return receive
        else:
            chunks, size = [], 0
            while True:
                msg = await receive()
                if msg["type"] != "http.request":
                    return receive  # disconnect: let the app see it
                chunks.append(msg)
                size += len(msg.get("body", b""))
                if size > self.max_body_bytes or not msg.get("more_body"):
                    break
            if size <= self.max_body_bytes:
                replay = iter(chunks)

                async def replayed() -> Any:
                    return next(replay, None) or await receive()

                return replayed
        body = json.dumps(
            {
                "errors": [
                    {
                        "message": f"request body is larger than {self.max_body_bytes} bytes "
                        "(ATLAS_API_MAX_BODY_BYTES); send a smaller query or fewer prompts",
                        "extensions": {"code": "PAYLOAD_TOO_LARGE"},
                    }
                ]
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
        return None
