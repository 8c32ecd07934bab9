"""Conversation Routing endpoints (reference §9.7): pass, take, release, request and extend
thread control, ``thread_owner`` and ``secondary_receivers``.

The calling app is the one the Page token was issued for. Passing needs the thread idle or
owned by the caller; the new owner gets ``pass_thread_control``, a displaced owner
``take_thread_control``, the owner ``request_thread_control`` (each if subscribed to
``messaging_handovers``). The Page Inbox (``263902037430900``) is always a valid target.
"""

from __future__ import annotations

from typing import Any

from mock_meta.builders import PAGE_INBOX_APP_ID
from mock_meta.graph_call import GraphAnswer, GraphCall
from mock_meta.graph_errors import GraphError, graph_error
from mock_meta.graph_nodes import page_of
from mock_meta.runtime import MockRuntime
from mock_meta.state import TokenGrant
from mock_meta.threads import MAX_EXTENSION_SECONDS

PAGE_INBOX = str(PAGE_INBOX_APP_ID)
THREAD_EDGES = frozenset(
    {
        "pass_thread_control",
        "take_thread_control",
        "release_thread_control",
        "request_thread_control",
        "extend_thread_control",
    }
)
_SUCCESS = GraphAnswer(200, {"success": True})


class _Thread:
    """The addressed conversation: the caller's grant, the user, the current owner."""

    def __init__(self, rt: MockRuntime, call: GraphCall) -> None:
        self.grant: TokenGrant = page_of(rt, call)
        self.page_id = self.grant.page_id
        self.caller = self.grant.app_id
        recipient = call.param("recipient")
        psid = recipient.get("id") if isinstance(recipient, dict) else None
        if not isinstance(psid, str | int) or not rt.state.has_user(self.page_id, str(psid)):
            raise graph_error(100, 2018001)
        self.psid = str(psid)
        self.owner = rt.thread_owner(self.page_id, self.psid)
        metadata = call.param("metadata")
        self.metadata = str(metadata)[:1000] if metadata is not None else None

    def require_owner_or_idle(self) -> None:
        if self.owner not in (None, self.caller):
            raise GraphError(2018300)


async def thread_control(rt: MockRuntime, call: GraphCall) -> GraphAnswer:
    """``POST /{page|me}/{pass|take|release|request|extend}_thread_control``."""
    thread = _Thread(rt, call)
    edge = call.segments[1]
    now = rt.clock.now()
    if edge == "pass_thread_control":
        thread.require_owner_or_idle()
        target = str(call.param("target_app_id", ""))
        if target != PAGE_INBOX and target not in rt.state.pages[thread.page_id].subscriptions:
            raise graph_error(100, 2018164)
        rt.threads.set_owner(thread.page_id, thread.psid, target)
        notice = rt.builder.pass_thread_control(
            thread.page_id,
            thread.psid,
            previous_owner_app_id=thread.owner,
            new_owner_app_id=target,
            metadata=thread.metadata,
        )
        rt.deliver_to(target, notice)
    elif edge == "take_thread_control":
        rt.threads.set_owner(thread.page_id, thread.psid, thread.caller)
        notice = rt.builder.take_thread_control(
            thread.page_id,
            thread.psid,
            previous_owner_app_id=thread.owner,
            new_owner_app_id=thread.caller,
            metadata=thread.metadata,
        )
        if thread.owner not in (None, thread.caller):
            rt.deliver_to(thread.owner, notice)
    elif edge == "release_thread_control":
        thread.require_owner_or_idle()
        rt.threads.set_owner(thread.page_id, thread.psid, None)
    elif edge == "request_thread_control":
        if thread.owner not in (None, thread.caller):
            request = rt.builder.request_thread_control(
                thread.page_id,
                thread.psid,
                requested_owner_app_id=thread.caller,
                metadata=thread.metadata or "",
            )
            rt.deliver_to(thread.owner, request)
    else:  # extend_thread_control
        if thread.owner != thread.caller:
            raise GraphError(2018300)
        duration = _duration(call.param("duration"))
        rt.threads.extend(thread.page_id, thread.psid, duration, now=now)
    return _SUCCESS


def _duration(value: Any) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = -1.0
    if not 0 < seconds <= MAX_EXTENSION_SECONDS:
        raise graph_error(100, None, "param duration must be 1 to 604800 seconds")
    return seconds


async def thread_owner(rt: MockRuntime, call: GraphCall) -> GraphAnswer:
    """``GET /{page|me}/thread_owner?recipient=PSID``: ``data`` is empty while idle."""
    grant = page_of(rt, call)
    psid = str(call.param("recipient", ""))
    if not rt.state.has_user(grant.page_id, psid):
        raise graph_error(100, 2018001)
    owner = rt.thread_owner(grant.page_id, psid)
    if owner is None:
        return GraphAnswer(200, {"data": []})
    held: dict[str, Any] = {"app_id": owner}
    expires = rt.threads.expiration(grant.page_id, psid)
    if expires is not None:
        held["expiration"] = int(expires)
    return GraphAnswer(200, {"data": [{"thread_owner": held}]})


async def secondary_receivers(rt: MockRuntime, call: GraphCall) -> GraphAnswer:
    """``GET /me/secondary_receivers`` (legacy handover): the Page's other connected apps."""
    grant = page_of(rt, call)
    apps = [
        rt.state.apps[app_id]
        for app_id in rt.state.pages[grant.page_id].subscriptions
        if app_id in rt.state.apps and app_id != grant.app_id
    ]
    return GraphAnswer(200, {"data": [{"id": a.app_id, "name": a.name} for a in apps]})
