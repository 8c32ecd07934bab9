"""A loopback Send API stub that is never the bottleneck: answers every call with success.

Routes: ``POST /{version}/{page|me}/messages`` (one call) and ``POST /`` or ``/{version}/``
(Graph batch, JSON or form ``batch=[...]``, up to 50 calls). ``GET /_stats`` returns
``{"calls", "unique", "duplicates", "requests", "batches"}`` — ``unique`` counts distinct
reply texts, so "every reply reached the stub" is ``unique == events sent``;
``POST /_reset`` zeroes them. ``BENCH_STUB_LATENCY_MS`` adds a fixed delay per request
(Graph's own latency is about 100 ms; 0 by default so only the client is measured).

Run it with ``uvicorn --factory bench.send_stub:from_env``.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any
from urllib.parse import parse_qs

from bench.receivers import ASGIApp, Receive, Scope, Send


class StubState:
    """Counters the benchmark reads; the set of texts catches lost and duplicated replies."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.calls = 0
        self.requests = 0
        self.batches = 0
        self.duplicates = 0
        self._texts: set[str] = set()

    def record(self, call: dict[str, Any]) -> dict[str, Any]:
        """Count one Send API call; return Graph's success body for it."""
        self.calls += 1
        message = call.get("message")
        text = message.get("text") if isinstance(message, dict) else None
        if isinstance(text, str):
            if text in self._texts:
                self.duplicates += 1
            else:
                self._texts.add(text)
        recipient = call.get("recipient")
        psid = recipient.get("id", "") if isinstance(recipient, dict) else ""
        return {"recipient_id": psid, "message_id": f"m_stub_{self.calls}"}

    def snapshot(self) -> dict[str, int]:
        return {
            "calls": self.calls,
            "unique": len(self._texts),
            "duplicates": self.duplicates,
            "requests": self.requests,
            "batches": self.batches,
        }


def _decode_call(body: bytes | str | dict[str, Any], content_type: bytes) -> dict[str, Any]:
    """A Send API call from JSON, or from a form whose values are JSON (both are legal)."""
    if isinstance(body, dict):
        return body
    text = body.decode() if isinstance(body, bytes) else body
    if content_type.startswith(b"application/json") or text.lstrip().startswith("{"):
        parsed = json.loads(text)
        return parsed if isinstance(parsed, dict) else {}
    call: dict[str, Any] = {}
    for key, values in parse_qs(text).items():
        try:
            call[key] = json.loads(values[0])
        except ValueError:
            call[key] = values[0]
    return call


def _batch_items(body: bytes, content_type: bytes) -> list[Any]:
    if content_type.startswith(b"application/json"):
        items = json.loads(body).get("batch", [])
    else:
        items = json.loads(parse_qs(body.decode()).get("batch", ["[]"])[0])
    return items if isinstance(items, list) else []


def create_app(latency_s: float = 0.0) -> ASGIApp:
    """The stub as a raw ASGI app (no framework: it shares a core with the load generator)."""
    state = StubState()

    async def respond(send: Send, status: int, payload: Any) -> None:
        body = json.dumps(payload).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
                await receive()
                await send({"type": "lifespan.shutdown.complete"})
            return
        path: str = scope["path"]
        if path == "/_stats":
            await respond(send, 200, state.snapshot())
            return
        chunks = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if path == "/_reset":
            state.reset()
            await respond(send, 200, state.snapshot())
            return
        content_type = next((v for k, v in scope["headers"] if k == b"content-type"), b"")
        state.requests += 1
        if latency_s:
            await asyncio.sleep(latency_s)
        try:
            if path.endswith("/messages"):
                await respond(send, 200, state.record(_decode_call(body, content_type)))
                return
            state.batches += 1
            answers = []
            for item in _batch_items(body, content_type):
                result = state.record(_decode_call(item.get("body", ""), b""))
                answers.append({"code": 200, "headers": [], "body": json.dumps(result)})
            await respond(send, 200, answers)
        except (ValueError, AttributeError, TypeError) as exc:
            err = {"message": f"stub could not parse the call: {type(exc).__name__}", "code": 100}
            await respond(send, 400, {"error": err})

    return app


def from_env() -> ASGIApp:
    """Factory for ``uvicorn --factory``."""
    return create_app(float(os.environ.get("BENCH_STUB_LATENCY_MS", "0")) / 1000.0)
