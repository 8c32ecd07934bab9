"""Pure-ASGI middleware for the OpenTelemetry-named HTTP server metrics.

Records ``http_server_request_duration_seconds{http_request_method, http_route,
http_response_status_code}`` and ``http_server_active_requests{http_request_method}``. The route
label is the matched route template (never the raw path); unknown methods become ``_OTHER``
and requests that matched no route get ``UNMATCHED_ROUTE``. Latency observations carry the
server span's trace id as an exemplar when it is sampled.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from opentelemetry import trace
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.metrics import BotMetrics

KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)
OTHER_METHOD = "_OTHER"
UNMATCHED_ROUTE = "_unmatched"


class HttpMetricsMiddleware:
    """Wrap an ASGI app; ``metrics`` is the app's ``BotMetrics``.

    ``routes`` (the app's route list) resolves the template when the router did not leave
    the matched route in ``scope["route"]`` (plain Starlette routes inside FastAPI).
    """

    def __init__(self, app: ASGIApp, metrics: BotMetrics, routes: Sequence[BaseRoute] = ()) -> None:
        self.app = app
        self._routes = routes
        self._duration = metrics.http_request_duration
        self._active = metrics.http_active_requests
        # Children cached per method: labels() takes a lock and builds a key on every call.
        self._active_by_method = {m: self._active.labels(m) for m in (*KNOWN_METHODS, OTHER_METHOD)}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        if method not in KNOWN_METHODS:
            method = OTHER_METHOD
        status = 500  # what the client sees if the app raises before answering
        start = time.perf_counter()

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        active = self._active_by_method[method]
        active.inc()
        try:
            await self.app(scope, receive, send_with_status)
        finally:
            active.dec()
            ctx = trace.get_current_span().get_span_context()
            exemplar = (
                {"trace_id": trace.format_trace_id(ctx.trace_id)}
                if ctx.is_valid and ctx.trace_flags.sampled
                else None
            )
            self._duration.labels(method, self._template(scope), str(status)).observe(
                time.perf_counter() - start, exemplar
            )

    def _template(self, scope: Scope) -> str:
        template = getattr(scope.get("route"), "path_format", None)
        if template:
            return str(template)
        partial = None
        for route in self._routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return str(getattr(route, "path_format", UNMATCHED_ROUTE))
            if match is Match.PARTIAL and partial is None:
                partial = getattr(route, "path_format", None)  # e.g. wrong method: 405
        return str(partial or UNMATCHED_ROUTE)
