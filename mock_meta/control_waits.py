"""``/_mock/wait/*``: long-polls answered when the journal records what they wait for.

Any action is addressed by its ``action_id`` (what ``POST /_mock/users/{psid}/actions``
returns): a message's own mid, or ``act_N`` for a read (no mid) or a reaction (whose mid is
its target's). ``mid`` is accepted as the older name of the same parameter. Timeouts are real
seconds, capped at ``MAX_WAIT_SECONDS``; a waiter costs O(1) to add and remove, so thousands
may wait at once.

    GET /_mock/wait/reply?action_id=act_3&timeout=5      -> 200 {reply, ...} | 408
    GET /_mock/wait/no-reply?psid=6543210987654321&within=1   -> 200 | 409 {reply}
    GET /_mock/wait/delivery?action_id=m_abc&timeout=5    -> 200 {state, attempts, ...} | 408
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import JSONResponse

from mock_meta.runtime import MockRuntime

MAX_WAIT_SECONDS = 60.0

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
    async def wait_reply(
        action_id: ActionId = None,
        mid: ActionId = None,
        psid: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
        timeout: WaitSeconds = 10.0,  # noqa: ASYNC109 - the long-poll deadline, a query param
    ) -> Any:
        key = _action_key(action_id, mid)
        if psid is None and rt.journal.action(key) is None:
            raise HTTPException(404, f"unknown action {key[:60]!r}; pass psid to wait anyway")
        result = await rt.journal.wait_reply(psid, key, timeout)
        if result is None:
            return JSONResponse({"detail": f"no reply to action {key} within {timeout:g} s"}, 408)
        return result.to_dict()

    @router.get(
        "/no-reply",
        summary="200 when nothing reaches the user within the window, else 409 with the reply",
        responses={409: {"description": "a reply arrived"}},
    )
    async def wait_no_reply(psid: Psid, within: WaitSeconds = 1.0) -> Any:
        reply = await rt.journal.wait_no_reply(psid, within)
        if reply is not None:
            return JSONResponse({"detail": "a reply arrived", "reply": reply.to_dict()}, 409)
        return {"ok": True, "within": within}

    @router.get(
        "/delivery",
        summary="Long-poll until the webhook carrying an action got a 200 or was given up",
        description="The delivery record once settled (delivered, dropped or skipped); 408 "
        "while it is still pending or retrying at the deadline.",
        responses={408: {"description": "not settled in time"}},
    )
    async def wait_delivery(
        action_id: ActionId = None,
        mid: ActionId = None,
        timeout: WaitSeconds = 10.0,  # noqa: ASYNC109 - the long-poll deadline, a query param
    ) -> Any:
        key = _action_key(action_id, mid)
        record = await rt.journal.wait_delivery(key, timeout)
        if record is None:
            return JSONResponse(
                {"detail": f"delivery of {key} not settled within {timeout:g} s"}, 408
            )
        return record.to_dict()

    return router


def _action_key(action_id: str | None, mid: str | None) -> str:
    key = action_id or mid
    if key is None:
        raise HTTPException(422, "pass action_id (or its older name, mid)")
    if action_id is not None and mid is not None and action_id != mid:
        raise HTTPException(422, "action_id and mid disagree; pass one")
    return key
