"""Conversation Routing endpoints (reference §9.7): pass, take, release, request and extend
thread control, ``thread_owner`` and ``secondary_receivers``.

The calling app is the one the Page token was issued for. Passing needs the thread idle or
owned by the caller; the new owner gets ``pass_thread_control``, a displaced owner
``take_thread_control``, the owner ``request_thread_control`` (each if subscribed to
``messaging_handovers``). The Page Inbox (``263902037430900``) is always a valid target.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Conversation:
    """One thread as an app sees it: the caller and the current owner (None: idle)."""

    page_id: str
    psid: str
    caller: str
    owner: str | None

    def require_owner_or_idle(self) -> None:
        if self.owner not in (None, self.caller):
            raise GraphError(2018300)


def _conversation(rt: MockRuntime, call: GraphCall) -> Conversation:
    grant: TokenGrant = page_of(rt, call)
    recipient = call.param("recipient")
    psid = recipient.get("id") if isinstance(recipient, dict) else None
    if not isinstance(psid, str | int) or not rt.state.has_user(grant.page_id, str(psid)):
        raise graph_error(100, 2018001)
    owner = rt.thread_owner(grant.page_id, str(psid))
    return Conversation(grant.page_id, str(psid), grant.app_id, owner)


def check_pass(rt: MockRuntime, conv: Conversation, target: str) -> None:
    """Passing needs the thread idle or ours, and a target connected to the Page."""
    conv.require_owner_or_idle()
    if target != PAGE_INBOX and target not in rt.state.pages[conv.page_id].subscriptions:
        raise graph_error(100, 2018164)


def pass_control(rt: MockRuntime, conv: Conversation, target: str, metadata: str | None) -> None:
    rt.threads.set_owner(conv.page_id, conv.psid, target, now=rt.clock.now())
    notice = rt.builder.pass_thread_control(
        conv.page_id,
        conv.psid,
        previous_owner_app_id=conv.owner,
        new_owner_app_id=target,
        metadata=metadata,
    )
    rt.deliver_to(target, notice)


def release_control(rt: MockRuntime, conv: Conversation) -> None:
    conv.require_owner_or_idle()
    rt.threads.set_owner(conv.page_id, conv.psid, None, now=rt.clock.now())


async def thread_control(rt: MockRuntime, call: GraphCall) -> GraphAnswer:
    """``POST /{page|me}/{pass|take|release|request|extend}_thread_control``."""
    conv = _conversation(rt, call)
    edge = call.segments[1]
    raw_metadata = call.param("metadata")
    metadata = str(raw_metadata)[:1000] if raw_metadata is not None else None
    if edge == "pass_thread_control":
        target = str(call.param("target_app_id", ""))
        check_pass(rt, conv, target)
        pass_control(rt, conv, target, metadata)
    elif edge == "take_thread_control":
        rt.threads.set_owner(conv.page_id, conv.psid, conv.caller, now=rt.clock.now())
        if conv.owner not in (None, conv.caller):
            notice = rt.builder.take_thread_control(
                conv.page_id,
                conv.psid,
                previous_owner_app_id=conv.owner,
                new_owner_app_id=conv.caller,
                metadata=metadata,
            )
            rt.deliver_to(conv.owner, notice)
    elif edge == "release_thread_control":
        release_control(rt, conv)
    elif edge == "request_thread_control":
        if conv.owner not in (None, conv.caller):
            request = rt.builder.request_thread_control(
                conv.page_id,
                conv.psid,
                requested_owner_app_id=conv.caller,
                metadata=metadata or "",
            )
            rt.deliver_to(conv.owner, request)
    else:  # extend_thread_control
        if conv.owner != conv.caller:
            raise GraphError(2018300)
        duration = _duration(call.param("duration"))
        rt.threads.extend(conv.page_id, conv.psid, duration, now=rt.clock.now())
    return GraphAnswer(200, {"success": True})


def send_thread_control(
    rt: MockRuntime, page_id: str, psid: str, app_id: str, fields: dict[str, Any]
) -> Callable[[], None] | None:
    """A Send API call's ``thread_control`` (reference §5.2): checked before the message
    goes out; the returned step applies it once the message was sent."""
    control = fields.get("thread_control")
    if control is None:
        return None
    kind = control.get("control_type") if isinstance(control, dict) else None
    conv = Conversation(page_id, psid, app_id, rt.thread_owner(page_id, psid))
    if kind == "pass":
        target = str(control.get("app_id", ""))
        check_pass(rt, conv, target)
        return lambda: pass_control(rt, conv, target, None)
    if kind == "release":
        conv.require_owner_or_idle()
        return lambda: release_control(rt, conv)
    raise graph_error(100, None, "param thread_control[control_type] must be pass or release")


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
