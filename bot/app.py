"""App factory: wires the edge, inbox, engine and Send API client into one FastAPI app.

>>> app = create_app(BotSettings(), registry=CollectorRegistry())  # doctest: +SKIP

Collaborators passed in belong to the caller (opened here if needed, never closed here);
the ones built by default are created in the lifespan and closed on shutdown in order:
engine (finishing in-flight work up to the grace period), Send API client, inbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry
from starlette.types import Receive, Scope, Send

from bot import __version__
from bot.cancel import cancel_and_wait
from bot.edge_admission import AdmissionGate
from bot.engine import Engine
from bot.http_metrics import HttpMetricsMiddleware
from bot.inbox import Inbox, WindowStore
from bot.inbox_guard import InboxFileGuard
from bot.loop_lag import LoopLagMonitor
from bot.metrics import BotMetrics
from bot.routing import Router, load_router
from bot.send_api import HttpSendApi, SendApi
from bot.settings import BotSettings
from bot.tracing import build_tracer_provider, instrument_app
from bot.webhook import WebhookEdge
from bot.webhook_lane import WebhookLane

if TYPE_CHECKING:
    from bot.shard_feed import ShardedReplica

log = logging.getLogger("bot.app")

SERVICE_NAME = "messenger-bot"


# Allocations between young-generation collections (CPython's default is 700). Each event
# allocates hundreds of short-lived objects; at the default the collector ran ~35 times a
# second and took 4.5 % of the bot's CPU at 1,300 events/s (gc.callbacks), at 10,000 about 1 %,
# with no longer pauses (a young pass over 10,000 objects takes about a millisecond).
YOUNG_GC_THRESHOLD = 10_000


def create_app(
    settings: BotSettings,
    *,
    inbox: Inbox | None = None,
    send_api: SendApi | None = None,
    router: Router | None = None,
    registry: CollectorRegistry | None = None,
    tracer_provider: trace.TracerProvider | None = None,
    freeze_gc: bool = False,
) -> FastAPI:
    """Build the bot's ASGI app; nothing is opened until the lifespan starts.

    ``freeze_gc`` (the served process sets it) moves everything built at start-up out of the
    garbage collector's full passes, which otherwise pause the loop for ~100 ms under a backlog,
    and collects the young generation less often (``YOUNG_GC_THRESHOLD``).
    """
    metrics = BotMetrics(registry if registry is not None else CollectorRegistry())
    own_provider = tracer_provider is None
    provider = (
        tracer_provider if tracer_provider is not None else build_tracer_provider(SERVICE_NAME)
    )
    tracer = provider.get_tracer("bot", __version__)
    edge = WebhookEdge(settings, metrics, tracer)
    # Handed to the HTTP protocol by `messenger-bot serve` (bot.http_guard), fed by the engine.
    admission = AdmissionGate.from_settings(settings, metrics)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            replica = _sharded_replica(settings, metrics) if inbox is None else None
            the_inbox = (
                inbox
                if inbox is not None
                else replica.inbox
                if replica is not None
                else _default_inbox(settings, metrics)
            )
            await the_inbox.open()
            if inbox is None:
                stack.push_async_callback(the_inbox.close)
            the_send_api = send_api
            if the_send_api is None:
                the_send_api = HttpSendApi(settings, metrics, tracer_provider=provider)
                stack.push_async_callback(the_send_api.aclose)
            the_router = router
            if the_router is None:
                the_router = load_router(settings.handlers_module, settings=settings)
            # The handlers' own clients (router.on_shutdown) close after the pool stopped.
            stack.push_async_callback(the_router.aclose)
            pool = Engine(
                settings=settings,
                inbox=the_inbox,
                router=the_router,
                send_api=the_send_api,
                metrics=metrics,
                tracer=tracer,
            )
            if replica is not None:  # leases are handed over once the engine has stopped
                stack.push_async_callback(replica.release)
            await pool.start()
            admission.attach(pool)
            admission.start()
            stack.callback(admission.detach)
            stack.callback(admission.stop)
            lag_monitor = LoopLagMonitor(metrics.event_loop_lag)
            lag_monitor.start()
            stack.push_async_callback(lag_monitor.stop)
            # Callbacks run last-in first-out: pool first, then Send API, then inbox.
            stack.push_async_callback(pool.stop, settings.shutdown_grace_seconds)
            if replica is not None:
                await replica.start(pool)
                stack.push_async_callback(replica.stop)
            stack.callback(edge.detach)
            edge.attach(
                the_inbox,
                pool if replica is None else replica.sink(pool),
                _inbox_guard(settings, own_inbox=inbox is None),
            )
            purger = asyncio.create_task(
                _purge_forever(
                    the_inbox,
                    the_inbox,  # type: ignore[arg-type]  # every inbox backend is a WindowStore
                    retention_seconds=settings.dedup_retention_seconds,
                    # An action older than the longest window allows no send (bot.window).
                    window_seconds=max(
                        settings.window_seconds, settings.human_agent_window_seconds
                    ),
                ),
                name="inbox-purge",
            )
            stack.push_async_callback(cancel_and_wait, purger)
            app.state.inbox, app.state.pool, app.state.metrics = the_inbox, pool, metrics
            if freeze_gc:  # not in tests: frozen objects are never freed
                gc.collect()
                gc.freeze()
                gc.set_threshold(YOUNG_GC_THRESHOLD, *gc.get_threshold()[1:])
            log.info("bot started", extra={"log_type": "lifecycle"})
            yield
            log.info("bot stopping", extra={"log_type": "lifecycle"})
        if own_provider and isinstance(provider, TracerProvider):
            provider.shutdown()  # flushes the OTLP exporter, if any

    app = BotApp(
        title="messenger-bot",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.router.routes.extend(edge.routes())
    app.webhook_lane = WebhookLane(edge, metrics, tracer)
    app.state.edge = edge
    app.state.admission = admission
    app.state.metrics = metrics
    app.add_middleware(HttpMetricsMiddleware, metrics=metrics, routes=app.router.routes)
    instrument_app(app, provider)
    return app


class BotApp(FastAPI):
    """FastAPI with a fast lane: ``POST /webhook`` skips the middleware stack (see
    ``bot.webhook_lane``); every other request takes the normal, instrumented path."""

    webhook_lane: WebhookLane | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lane = self.webhook_lane
        if lane is not None and lane.handles(scope):
            await lane(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app_from_env() -> FastAPI:
    """Entry point for ``uvicorn --factory bot.app:create_app_from_env``."""
    from bot.jsonlog import configure_logging

    settings = BotSettings()  # type: ignore[call-arg]  # required values come from the env
    configure_logging(settings.log_level, secret_values(settings))
    return create_app(settings, freeze_gc=True)


def secret_values(settings: BotSettings) -> list[str]:
    """Every secret the process knows, for the log redactor."""
    values = [
        settings.app_secret.get_secret_value(),
        settings.app_secret_previous.get_secret_value(),
        settings.verify_token.get_secret_value(),
        settings.page_access_token.get_secret_value(),
        *settings.page_token_map().values(),
    ]
    return [v for v in values if v]


def _inbox_guard(settings: BotSettings, *, own_inbox: bool) -> InboxFileGuard | None:
    """A watch on the inbox file this app opened (a passed-in inbox is the caller's)."""
    if not own_inbox or settings.inbox_backend != "sqlite":
        return None
    return InboxFileGuard(settings.inbox_path)


def _sharded_replica(settings: BotSettings, metrics: BotMetrics) -> ShardedReplica | None:
    if settings.inbox_backend != "redis":
        return None
    from bot.shard_feed import ShardedReplica

    return ShardedReplica.from_settings(settings, metrics)


def _default_inbox(settings: BotSettings, metrics: BotMetrics) -> Inbox:
    if settings.inbox_backend == "memory":
        from bot.inbox_memory import MemoryInbox

        return MemoryInbox()
    from bot.inbox_sqlite import SqliteInbox

    return SqliteInbox(
        settings.inbox_path,
        synchronous=settings.inbox_synchronous,
        on_commit=metrics.inbox_batch_size.observe,
    )


async def _purge_forever(
    inbox: Inbox, windows: WindowStore, *, retention_seconds: float, window_seconds: float
) -> None:
    """Forget done events past their dedup retention, and window times past the longest
    window, a few times per retention period."""
    interval = min(3600.0, max(1.0, retention_seconds / 4))
    while True:
        now = time.time()
        try:
            removed = await inbox.purge(now - retention_seconds)
            forgotten = await windows.forget_windows(int((now - window_seconds) * 1000))
        except Exception as exc:  # try again next round; the inbox may be briefly busy
            log.warning("inbox purge failed: %s", exc, extra={"log_type": "lifecycle"})
        else:
            if removed or forgotten:
                log.info(
                    "purged %d done events and %d expired window times",
                    removed,
                    forgotten,
                    extra={"log_type": "lifecycle"},
                )
        await asyncio.sleep(interval)
