"""The console's HTTP surface: the page at ``/``, its files, a live snapshot stream (SSE), and
the few operations the control API lacks (redeliver, raw signed POST, re-subscribe).

Everything else the page does (user actions, faults, chaos, clock, reset) goes through the
``/_mock/`` control API itself, so a tap in the console is exactly a control-API call.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, StreamingResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from mock_meta.console.capture import WireCapture
from mock_meta.console.feed import ConsoleFeed
from mock_meta.console.models import RawEventRequest, ResubscribeRequest
from mock_meta.console.view import (
    conversation,
    delivery_view,
    failure_timeline,
    mark_retries,
    send_view,
)
from mock_meta.control_responses import (
    ConsoleSnapshot,
    RawPostOutcome,
    Redelivered,
    Resubscribed,
)
from mock_meta.delivery import AppTarget
from mock_meta.runtime import MockRuntime
from mock_meta.state import MESSAGING_FIELDS, App
from mock_meta.wire import webhook_headers

PREFIX = "/_mock/console"
STATIC_DIR = Path(__file__).with_name("static")
# How often the stream looks for changes; each look filters the journal once.
STREAM_INTERVAL_SECONDS = 0.3
# uvicorn waits for open responses before it shuts down, so a stream ends by itself after
# this long; the browser reconnects at once (``retry``) and gets a fresh snapshot.
STREAM_MAX_SECONDS = 5.0
RECONNECT_MS = 250
Id = Annotated[str | None, Query(max_length=40)]


class RootPage:
    """ASGI: ``GET /`` (the console page) goes to the framework app, anything else to
    ``inner`` (the Graph surface, where ``POST /`` is a batch request)."""

    def __init__(self, inner: ASGIApp, framework: ASGIApp) -> None:
        self.inner = inner
        self.framework = framework

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/" and scope["method"] in ("GET", "HEAD"):
            await self.framework(scope, receive, send)
        else:
            await self.inner(scope, receive, send)


def build_router(rt: MockRuntime, feed: ConsoleFeed, capture: WireCapture) -> APIRouter:
    router = APIRouter()

    @router.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-store"})

    @router.get(
        f"{PREFIX}/snapshot",
        summary="Everything the console shows, for one conversation",
        tags=["console"],
        response_model=ConsoleSnapshot,
    )
    async def get_snapshot(psid: Id = None, page_id: Id = None) -> dict[str, Any]:
        return snapshot(rt, feed, capture, psid=psid, page_id=page_id)

    @router.get(
        f"{PREFIX}/stream",
        summary="Server-sent events: the snapshot again whenever it changes",
        tags=["console"],
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}, "description": "snapshots"}},
    )
    async def stream(request: Request, psid: Id = None, page_id: Id = None) -> StreamingResponse:
        async def events() -> AsyncIterator[str]:
            last, ends = "", time.monotonic() + STREAM_MAX_SECONDS
            yield f"retry: {RECONNECT_MS}\n\n"
            while time.monotonic() < ends and not await request.is_disconnected():
                view = snapshot(rt, feed, capture, psid=psid, page_id=page_id)
                key = json.dumps({**view, "clock": _clock_key(view["clock"])}, default=str)
                if key != last:
                    last = key
                    yield f"data: {json.dumps(view, default=str)}\n\n"
                await asyncio.sleep(STREAM_INTERVAL_SECONDS)

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    @router.post(
        f"{PREFIX}/deliveries/{{delivery_id}}/redeliver",
        status_code=202,
        summary="Queue a delivery's event again (a new delivery, freshly signed)",
        tags=["console"],
        response_model=Redelivered,
    )
    async def redeliver(delivery_id: Annotated[str, PathParam(max_length=40)]) -> dict[str, Any]:
        queued = capture.queued(delivery_id)
        if queued is None:
            raise HTTPException(404, f"delivery {delivery_id[:40]} is not kept any more")
        record, event = queued
        app = rt.state.apps.get(record.app_id)
        if app is None:
            raise HTTPException(404, f"app {record.app_id} no longer exists")
        new_id = rt.engine.enqueue(
            AppTarget(app.app_id, app.secret, app.callback_url),
            record.page_id,
            event,
            field=record.field,
            psid=record.psid,
            mid=record.mid,
            standby=record.standby,
            event_type=record.event_type,
        )
        return {"delivery_id": new_id, "redelivers": delivery_id}

    @router.post(
        f"{PREFIX}/raw",
        summary="POST a body, byte for byte, signed with the app secret, to the app's callback",
        tags=["console"],
        response_model=RawPostOutcome,
    )
    async def raw(body: RawEventRequest) -> dict[str, Any]:
        app = _app(rt, body.app_id)
        data = body.body.encode("utf-8")
        headers = webhook_headers(data, app.secret, signature_mode=body.signature)
        started = time.perf_counter()
        try:
            response = await rt.http_client.post(
                app.callback_url, content=data, headers=headers, timeout=rt.profile.timeout_seconds
            )
        except httpx.HTTPError as exc:
            return {
                "ok": False,
                "status": None,
                "error": type(exc).__name__,
                "latency_ms": _ms_since(started),
                "headers": headers,
            }
        return {
            "ok": rt.profile.is_success(response.status_code),
            "status": response.status_code,
            "error": None,
            "latency_ms": _ms_since(started),
            "headers": headers,
            "response_body": response.text[:2000],
        }

    @router.post(
        f"{PREFIX}/resubscribe",
        summary="Subscribe the app to the page again (what POST /{page-id}/subscribed_apps does)",
        tags=["console"],
        response_model=Resubscribed,
    )
    async def resubscribe(body: ResubscribeRequest | None = None) -> dict[str, Any]:
        body = body or ResubscribeRequest()
        app = _app(rt, body.app_id)
        page_id = body.page_id or next(iter(rt.state.pages), "")
        page = rt.state.pages.get(page_id)
        if page is None:
            raise HTTPException(404, f"unknown page {page_id[:40]}")
        previous = page.subscriptions.get(app.app_id)
        fields = sorted(previous.fields if previous is not None else MESSAGING_FIELDS)
        rt.state.subscribe_page(page.page_id, app.app_id, fields)
        rt.journal.record_subscription(app.app_id, page.page_id, "subscribed", fields=fields)
        return {"app_id": app.app_id, "page_id": page.page_id, "fields": fields}

    return router


def snapshot(
    rt: MockRuntime,
    feed: ConsoleFeed,
    capture: WireCapture,
    *,
    psid: str | None,
    page_id: str | None,
) -> dict[str, Any]:
    """The console's whole view: world, clock, faults, one conversation, newest records.

    Reads only the feed's bounded windows, never a scan of the journal."""
    config = rt.state.config()
    users = config["users"]
    if psid is None and users:
        psid, page_id = users[0]["psid"], page_id or users[0]["page_id"]
    profile = rt.profile
    thread = conversation(feed.conversation(psid), page_id) if psid is not None else []
    sends = mark_retries([send_view(s) for s in feed.sends()])
    deliveries = [
        delivery_view(d, capture.posts(d.delivery_id), profile) for d in feed.deliveries()
    ]
    for page in config["pages"]:
        for sub in page["subscribed_apps"]:
            since = rt.engine.failing_since(sub["app_id"], page["id"])
            sub["failure"] = failure_timeline(since, profile)
    return {
        "clock": rt.clock.snapshot(),
        "config": config,
        "psid": psid,
        "page_id": page_id,
        "conversation": thread,
        "deliveries": deliveries[::-1],
        "sends": sends[::-1],
        "alerts": [a.to_dict() for a in feed.alerts()][::-1],
        "subscriptions": [s.to_dict() for s in feed.subscriptions()][::-1],
        "faults": [f.as_dict() for f in rt.faults.armed()],
        "chaos": rt.chaos.config.to_dict(),
        "profile": profile.to_dict(),
    }


def _clock_key(clock: dict[str, Any]) -> tuple[Any, ...]:
    """The clock minus its steady running: the page moves a running clock on by itself, so
    only a freeze, a rate change or a jump is news."""
    if clock["frozen"]:
        return (True, clock["now"])
    return (False, clock["rate"], round(clock["now"] - clock["rate"] * time.monotonic(), 1))


def _app(rt: MockRuntime, app_id: str | None) -> App:
    app = rt.state.apps.get(app_id or next(iter(rt.state.apps), ""))
    if app is None:
        raise HTTPException(404, f"unknown app {(app_id or '')[:40]}")
    return app


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
