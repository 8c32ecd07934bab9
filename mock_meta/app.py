"""``create_app``: one mock platform (Graph surface, control API, metrics) on one port.

>>> app = create_app(MockSettings(), registry=CollectorRegistry())   # doctest: +SKIP
>>> # uvicorn.run(app) — or httpx.ASGITransport(app) with the lifespan run, in tests

The delivery engine starts and stops with the app's lifespan; nothing is built at import.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from starlette.types import ASGIApp, Receive, Scope, Send

from mock_meta import console, control_api, control_waits
from mock_meta.clock import ControllableClock
from mock_meta.control_errors import SafeJSONResponse, install_error_handlers
from mock_meta.graph_api import GraphSurface
from mock_meta.metrics import MockMetrics
from mock_meta.runtime import MockRuntime
from mock_meta.settings import MockSettings


def create_app(
    settings: MockSettings,
    *,
    clock: ControllableClock | None = None,
    registry: CollectorRegistry | None = None,
    http_client: httpx.AsyncClient | None = None,
) -> FastAPI:
    """Wire a mock. ``http_client`` (for webhooks and handshakes) is closed only if built here;
    without one, webhooks go out through the delivery engine's own HTTP/1.1 client."""
    registry = registry if registry is not None else CollectorRegistry()
    clock = clock or ControllableClock()
    owns_client = http_client is None
    client = http_client or httpx.AsyncClient(
        # trust_env=False: a developer's HTTP(S)_PROXY must never capture loopback handshakes.
        trust_env=False,
    )
    rt = MockRuntime(
        settings,
        clock=clock,
        metrics=MockMetrics(registry),
        http_client=client,
        webhook_client=http_client,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await rt.engine.start()
        try:
            yield
        finally:
            await rt.engine.stop()
            if owns_client:
                await client.aclose()

    app = _MockApp(
        title="mock_meta — a fake Messenger Platform",
        description=(
            "Graph/Send API surface (any `/vNN.N/` prefix) plus the `/_mock/` control API used "
            "by tests and load tests: simulated users, faults, chaos, clock, journal and waits."
        ),
        version="0.1.0",
        lifespan=lifespan,
        default_response_class=SafeJSONResponse,
    )
    install_error_handlers(app)
    app.state.runtime = rt

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encoder(registry), media_type=content_type)

    app.include_router(control_api.build_router(rt))
    app.include_router(control_waits.build_router(rt))
    app.graph = GraphSurface(app.framework, runtime=rt)  # every non-/_mock/ path is Graph
    if settings.console:  # the web console at GET / (its API under /_mock/console/)
        app.graph = console.install(app, rt, graph=app.graph, framework=app.framework)
    app.graph = control_waits.WaitLane(app.graph, rt)  # long-polls skip the framework too
    return app


class _MockApp(FastAPI):
    """FastAPI whose Graph paths skip the framework's middleware stack (the Send API is the
    load tests' hot path and that stack cost a third of it): :class:`GraphSurface` sees every
    request first and hands ``/_mock/``, ``/metrics`` and the docs to :meth:`framework`."""

    graph: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.graph is None:
            await super().__call__(scope, receive, send)
        else:
            await self.graph(scope, receive, send)

    async def framework(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The FastAPI app with its whole middleware stack."""
        await super().__call__(scope, receive, send)


def create_app_from_env() -> FastAPI:
    """For ``uvicorn --factory mock_meta.app:create_app_from_env``."""
    return create_app(MockSettings())
