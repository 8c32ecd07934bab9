"""Reference webhook receivers: the ceiling the bot's ack path is compared with.

``create_bare_app`` is the least a correct receiver can do in Python: read the body, check
``X-Hub-Signature-256`` over the raw bytes, parse the JSON, answer 200. No framework, no
storage. ``create_fastapi_app`` does the same in one FastAPI route (the common way).
Both count accepted POSTs at ``GET /_count`` so the mock benchmark can use them as a sink.

Run one with ``uvicorn --factory bench.receivers:bare_from_env`` (reads
``MESSENGER_APP_SECRET``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI, Request, Response

from bot.signature import verify_signature

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _valid(secret: bytes, header: bytes | None, body: bytes) -> bool:
    return verify_signature(body, header.decode("latin-1") if header else None, [secret]).ok


async def _answer(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def create_bare_app(secret: bytes) -> ASGIApp:
    """A raw ASGI receiver: signature over raw bytes, ``json.loads``, ``200 EVENT_RECEIVED``."""
    accepted = 0

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal accepted
        if scope["type"] != "http":  # lifespan: nothing to set up
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
                await receive()
                await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["method"] == "GET":
            await _answer(send, 200, str(accepted).encode())
            return
        chunks = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        signature = next((v for k, v in scope["headers"] if k == b"x-hub-signature-256"), None)
        if not _valid(secret, signature, body):
            await _answer(send, 401, b"bad signature")
            return
        try:
            json.loads(body)
        except ValueError:
            await _answer(send, 400, b"bad json")
            return
        accepted += 1
        await _answer(send, 200, b"EVENT_RECEIVED")

    return app


def create_fastapi_app(secret: bytes) -> FastAPI:
    """The same contract as one FastAPI route, written the way most tutorials do."""
    app = FastAPI()
    counter = {"accepted": 0}

    @app.get("/_count")
    async def count() -> dict[str, int]:
        return counter

    @app.post("/webhook")
    async def webhook(request: Request) -> Response:
        body = await request.body()
        header = request.headers.get("x-hub-signature-256", "").encode()
        if not _valid(secret, header, body):
            return Response("bad signature", status_code=401)
        json.loads(body)
        counter["accepted"] += 1
        return Response("EVENT_RECEIVED", media_type="text/plain")

    return app


def _secret_from_env() -> bytes:
    return os.environ.get("MESSENGER_APP_SECRET", "test_app_secret").encode()


def bare_from_env() -> ASGIApp:
    """Factory for ``uvicorn --factory``."""
    return create_bare_app(_secret_from_env())


def fastapi_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory``."""
    return create_fastapi_app(_secret_from_env())
