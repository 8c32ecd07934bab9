"""``/_mock/wait/*``: long-polls answered when the journal records what they wait for.

Any action is addressed by its ``action_id`` (what ``POST /_mock/users/{psid}/actions``
returns): a message's own mid, or ``act_N`` for a read (no mid) or a reaction (whose mid is
its target's). ``mid`` is accepted as the older name of the same parameter. Timeouts are real
seconds, capped at ``MAX_WAIT_SECONDS``.

    GET /_mock/wait/reply?action_id=act_3&timeout=5      -> 200 {reply, ...} | 404 | 408
    GET /_mock/wait/no-reply?psid=6543210987654321&within=1   -> 200 | 409 {reply}
    GET /_mock/wait/delivery?action_id=m_abc&timeout=5    -> 200 {state, attempts, ...} | 408

Thousands of long-polls may end at the same instant, so :class:`WaitLane` answers them in
front of FastAPI (whose per-request cost made 10^4 waiters finish up to 7x late); the FastAPI
routes below document them at ``/docs`` and run the same code.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from mock_meta.runtime import MockRuntime

MAX_WAIT_SECONDS = 60.0
PREFIX = "/_mock/wait/"

Answer = tuple[int, dict[str, Any]]


class WaitError(ValueError):
    """A wait parameter that cannot be used; answered with ``status`` and the message."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


# ---- the waits: parameters in, (status, JSON body) out ----------------------------------------


async def wait_reply(rt: MockRuntime, params: Mapping[str, str]) -> Answer:
    key = _action_key(params)
    psid = _text(params, "psid", 64)
    timeout = _seconds(params, "timeout", 10.0)
    if psid is None and rt.journal.action(key) is None:
        raise WaitError(f"unknown action {key[:60]!r}; pass psid to wait anyway", 404)
    result = await rt.journal.wait_reply(psid, key, timeout)
    if result is None:
        return 408, {"detail": f"no reply to action {key} within {timeout:g} s"}
    return 200, result.to_dict()


async def wait_no_reply(rt: MockRuntime, params: Mapping[str, str]) -> Answer:
    psid = _text(params, "psid", 64)
    if psid is None:
        raise WaitError("pass psid")
    within = _seconds(params, "within", 1.0)
    reply = await rt.journal.wait_no_reply(psid, within)
    if reply is not None:
        return 409, {"detail": "a reply arrived", "reply": reply.to_dict()}
    return 200, {"ok": True, "within": within}


async def wait_delivery(rt: MockRuntime, params: Mapping[str, str]) -> Answer:
    key = _action_key(params)
    timeout = _seconds(params, "timeout", 10.0)
    record = await rt.journal.wait_delivery(key, timeout)
    if record is None:
        return 408, {"detail": f"delivery of {key} not settled within {timeout:g} s"}
    return 200, record.to_dict()


WAITS: dict[str, Callable[[MockRuntime, Mapping[str, str]], Awaitable[Answer]]] = {
    "reply": wait_reply,
    "no-reply": wait_no_reply,
    "delivery": wait_delivery,
}


def _text(params: Mapping[str, str], name: str, max_length: int) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if not 1 <= len(value) <= max_length:
        raise WaitError(f"{name} must be 1 to {max_length} characters")
    return value


def _action_key(params: Mapping[str, str]) -> str:
    action_id, mid = _text(params, "action_id", 200), _text(params, "mid", 200)
    if action_id is not None and mid is not None and action_id != mid:
        raise WaitError("action_id and mid disagree; pass one")
    key = action_id or mid
    if key is None:
        raise WaitError("pass action_id (or its older name, mid)")
    return key


def _seconds(params: Mapping[str, str], name: str, default: float) -> float:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise WaitError(f"{name} must be a number of seconds") from None
    if not (math.isfinite(value) and 0 < value <= MAX_WAIT_SECONDS):
        raise WaitError(f"{name} must be more than 0 and at most {MAX_WAIT_SECONDS:g} seconds")
    return value


async def answer(rt: MockRuntime, name: str, params: Mapping[str, str]) -> Answer:
    """Run wait ``name``; bad parameters become their 4xx answer."""
    try:
        return await WAITS[name](rt, params)
    except WaitError as exc:
        return exc.status, {"detail": str(exc)}


# ---- the lean lane in front of FastAPI --------------------------------------------------------


class WaitLane:
    """Pure ASGI: ``GET /_mock/wait/{name}`` answered here, everything else passed to ``app``."""

    def __init__(self, app: ASGIApp, runtime: MockRuntime) -> None:
        self.app = app
        self.rt = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        name = path[len(PREFIX) :] if path.startswith(PREFIX) else None
        if scope["type"] != "http" or scope["method"] != "GET" or name not in WAITS:
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"").decode("latin-1")
        status, body = await answer(self.rt, name, dict(parse_qsl(query)))
        payload = json.dumps(body, separators=(",", ":")).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})


# ---- the documented routes (OpenAPI at /docs) --------------------------------------------------

WaitSeconds = Annotated[float, Query(gt=0, le=MAX_WAIT_SECONDS, allow_inf_nan=False)]
ActionId = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=200,
        description="The action id returned by POST /_mock/users/{psid}/actions.",
    ),
]
Psid = Annotated[str, Query(min_length=1, max_length=64)]


def build_router(rt: MockRuntime) -> APIRouter:
    router = APIRouter(prefix="/_mock/wait", tags=["waits"])

    async def respond(name: str, params: dict[str, Any]) -> JSONResponse:
        given = {k: str(v) for k, v in params.items() if v is not None}
        status, body = await answer(rt, name, given)
        return JSONResponse(body, status)

    @router.get(
        "/reply",
        summary="Long-poll for the bot's first message to the user after an action",
        description=(
            "Answers as soon as the bot's Send API message to the action's user is recorded "
            "(at once if it already was): the reply, the time from the action to it, and the "
            "ack latency of the webhook that carried the action. 408 when nothing arrives "
            "in time. `psid` is needed only for an action the journal no longer holds."
        ),
        responses={404: {"description": "unknown action"}, 408: {"description": "no reply"}},
    )
    async def reply(
        action_id: ActionId = None,
        mid: ActionId = None,
        psid: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
        timeout: WaitSeconds = 10.0,  # noqa: ASYNC109 - the long-poll deadline, a query param
    ) -> JSONResponse:
        params = {"action_id": action_id, "mid": mid, "psid": psid, "timeout": timeout}
        return await respond("reply", params)

    @router.get(
        "/no-reply",
        summary="200 when nothing reaches the user within the window, else 409 with the reply",
        responses={409: {"description": "a reply arrived"}},
    )
    async def no_reply(psid: Psid, within: WaitSeconds = 1.0) -> JSONResponse:
        return await respond("no-reply", {"psid": psid, "within": within})

    @router.get(
        "/delivery",
        summary="Long-poll until the webhook carrying an action got a 200 or was given up",
        description="The delivery record once settled (delivered, dropped or skipped); 408 "
        "while it is still pending or retrying at the deadline.",
        responses={408: {"description": "not settled in time"}},
    )
    async def delivery(
        action_id: ActionId = None,
        mid: ActionId = None,
        timeout: WaitSeconds = 10.0,  # noqa: ASYNC109 - the long-poll deadline, a query param
    ) -> JSONResponse:
        params = {"action_id": action_id, "mid": mid, "timeout": timeout}
        return await respond("delivery", params)

    return router
