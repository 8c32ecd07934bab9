"""The ``/_mock/`` control API: one router per concern, composed here, plus the waits.

Documented at ``/docs``. Errors are short JSON reasons (``{"detail": ...}``) with 400/404/422;
long-polls are capped at ``MAX_WAIT_SECONDS``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from mock_meta.control_faults import build_faults_router
from mock_meta.control_journal import build_journal_router
from mock_meta.control_settings import build_clock_router, build_settings_router
from mock_meta.control_users import build_users_router
from mock_meta.control_world import build_world_router
from mock_meta.runtime import MockRuntime

MAX_WAIT_SECONDS = 60.0

WaitSeconds = Annotated[float, Query(gt=0, le=MAX_WAIT_SECONDS)]


def build_router(rt: MockRuntime) -> APIRouter:
    router = APIRouter(prefix="/_mock")
    for part in (
        build_world_router,
        build_users_router,
        build_faults_router,
        build_settings_router,
        build_clock_router,
        build_journal_router,
    ):
        router.include_router(part(rt))

    @router.get(
        "/wait/reply",
        summary="Long-poll for the bot's first message to psid after action mid (408 on timeout)",
        tags=["journal"],
        responses={408: {"description": "no reply in time"}},
    )
    async def wait_reply(
        psid: Annotated[str, Query(min_length=1, max_length=64)],
        mid: Annotated[str, Query(min_length=1, max_length=200)],
        timeout: WaitSeconds = 10.0,  # noqa: ASYNC109 - the long-poll deadline, a query param
    ) -> Any:
        result = await rt.journal.wait_reply(psid, mid, timeout)
        if result is None:
            return JSONResponse({"detail": f"no reply to {psid} within {timeout:g} s"}, 408)
        return result.to_dict()

    @router.get(
        "/wait/no-reply",
        summary="200 when nothing reaches psid within the window, else 409 with the reply",
        tags=["journal"],
        responses={409: {"description": "a reply arrived"}},
    )
    async def wait_no_reply(
        psid: Annotated[str, Query(min_length=1, max_length=64)],
        within: WaitSeconds = 1.0,
    ) -> Any:
        reply = await rt.journal.wait_no_reply(psid, within)
        if reply is not None:
            return JSONResponse({"detail": "a reply arrived", "reply": reply.to_dict()}, 409)
        return {"ok": True, "within": within}

    @router.get(
        "/wait/delivery",
        summary="Long-poll until the webhook carrying mid got a 200 or was given up (408: timeout)",
        tags=["journal"],
        responses={408: {"description": "not settled in time"}},
    )
    async def wait_delivery(
        mid: Annotated[str, Query(min_length=1, max_length=200)],
        timeout: WaitSeconds = 10.0,  # noqa: ASYNC109 - the long-poll deadline, a query param
    ) -> Any:
        record = await rt.journal.wait_delivery(mid, timeout)
        if record is None:
            return JSONResponse(
                {"detail": f"delivery of {mid} not settled within {timeout:g} s"}, 408
            )
        return record.to_dict()

    return router
