"""``/_mock/users/{psid}/actions``: a simulated user does something; the bot gets a webhook."""

from __future__ import annotations

import itertools
from typing import Any

from fastapi import APIRouter, HTTPException

from mock_meta.actions import WINDOW_OPENING, build_action
from mock_meta.builders import EventType
from mock_meta.control_errors import SafeJSONResponse
from mock_meta.control_models import UserAction
from mock_meta.control_responses import ActionAccepted
from mock_meta.runtime import MockRuntime


def build_users_router(rt: MockRuntime) -> APIRouter:
    router = APIRouter(tags=["users"])
    action_ids = itertools.count(1)

    @router.post(
        "/users/{psid}/actions",
        response_model=ActionAccepted,
        summary="A user action, delivered to the bot as a signed webhook",
        responses={
            400: {"description": "the action cannot apply (e.g. nothing to react to)"},
            404: {"description": "unknown user, or not on that page"},
        },
    )
    async def user_action(psid: str, body: UserAction) -> Any:
        """One model per ``type`` (see the schemas); the event is queued for every app on the
        page (the thread owner on ``messaging[]``, the others on ``standby[]``). Wait for
        the bot's answer with ``/_mock/wait/reply?psid=&mid=<action_id>``."""
        pages = rt.state.pages_of(psid)
        if not pages:
            raise HTTPException(404, f"unknown user {psid[:40]} (create it with POST /_mock/users)")
        page_id = body.page_id or pages[0]
        if page_id not in pages:
            raise HTTPException(404, f"user {psid[:40]} does not exist on page {page_id[:40]}")
        try:
            built = build_action(
                rt.builder,
                page_id,
                psid,
                body,
                app_id=next(iter(rt.state.pages[page_id].subscriptions), None),
                last_bot_message=lambda: _last_bot_message(rt, psid),
            )
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        # The action id: a message's own mid; a reaction's or edit's mid is its target's.
        own_mid = built.event_type not in (EventType.REACTION, EventType.MESSAGE_EDIT)
        key = built.mid if built.mid and own_mid else f"act_{next(action_ids)}"
        rt.journal.record_action(psid, page_id, key, body.type, expects_reply=built.expects_reply)
        if body.type in WINDOW_OPENING:
            rt.state.record_inbound(page_id, psid, rt.clock.now())
        rt.note_owner_change(built)
        rt.threads.touch(page_id, psid, now=rt.clock.now())
        delivery_ids = rt.deliver_action(built, mid=key)
        # Rendered directly (the model documents it): this is the load tests' hot path.
        return SafeJSONResponse(
            {
                "mid": built.mid,
                "action_id": key,
                "timestamp": built.timestamp_ms,
                "delivery_id": delivery_ids[0] if delivery_ids else None,
                "delivery_ids": delivery_ids,
                "event": built.event,
            }
        )

    return router


def _last_bot_message(rt: MockRuntime, psid: str) -> str | None:
    for send in reversed(rt.journal.sends(psid=psid)):
        if send.is_reply and send.message_id:
            return send.message_id
    return None
