"""Turn a control-API user action into the webhook event Meta would send (via the builders).

>>> sorted(WINDOW_OPENING)[:3]
['attachment', 'message_edit', 'optin']
"""

from __future__ import annotations

from collections.abc import Callable

from mock_meta.builders import PAGE_INBOX_APP_ID, BuiltEvent, EventBuilder
from mock_meta.control_models import ActionRequest

# Actions that open or refresh the 24 h standard messaging window (reference §7).
WINDOW_OPENING = frozenset(
    {
        "text",
        "quick_reply",
        "attachment",
        "postback",
        "reaction",
        "referral",
        "optin",
        "message_edit",
        "standby_text",
    }
)


def build_action(
    b: EventBuilder,
    page_id: str,
    psid: str,
    req: ActionRequest,
    *,
    app_id: str | None = None,
    last_bot_message: Callable[[], str | None] = lambda: None,
) -> BuiltEvent:
    """The event for ``req``; raises ValueError with a reason a test author can act on.

    ``app_id`` is the bot's app (handover target); ``last_bot_message`` supplies the default
    reaction target.
    """
    kind = req.type
    if kind in ("text", "standby_text"):
        if not req.text:
            raise ValueError(f"{kind} needs a non-empty 'text'")
        return b.text(
            page_id, psid, req.text, reply_to=req.reply_to, standby=kind == "standby_text"
        )
    if kind == "quick_reply":
        if req.payload is None:
            raise ValueError("quick_reply needs 'payload' (and 'text' as the tapped title)")
        return b.quick_reply(page_id, psid, req.text or req.payload, req.payload)
    if kind == "attachment":
        return b.attachment(
            page_id, psid, req.attachment_type, url=req.url, count=req.count, text=req.text
        )
    if kind == "postback":
        if req.payload is None:
            raise ValueError("postback needs 'payload'")
        return b.postback(
            page_id,
            psid,
            req.payload,
            title=req.title or "Get Started",
            ref=req.ref,
            source=req.source,
        )
    if kind == "reaction":
        target = req.target_mid or last_bot_message()
        if target is None:
            raise ValueError("reaction needs 'target_mid' (the bot has not messaged this user yet)")
        action = req.action or "react"
        if action not in ("react", "unreact"):
            raise ValueError("reaction 'action' must be react or unreact")
        return b.reaction(page_id, psid, target, req.reaction, action=action)
    if kind == "read":
        return b.read(page_id, psid, b.now_ms())
    if kind == "referral":
        return b.referral(page_id, psid, req.ref or "harness", source=req.source)
    if kind == "optin":
        return b.optin(page_id, psid, payload=req.payload or "SIGNUP", ref=req.ref)
    if kind == "message_edit":
        if not req.target_mid or not req.text:
            raise ValueError("message_edit needs 'target_mid' and the new 'text'")
        return b.message_edit(page_id, psid, req.target_mid, req.text)
    if kind == "handover":
        return _handover(b, page_id, psid, req, app_id or str(PAGE_INBOX_APP_ID))
    if kind == "policy_enforcement":
        action = req.action or "warning"
        if action not in ("warning", "block", "unblock"):
            raise ValueError("policy_enforcement 'action' must be warning, block or unblock")
        return b.policy_enforcement(page_id, action, reason=req.reason)
    if kind == "account_linking":
        return b.account_linking(page_id, psid, linked=req.linked)
    if kind == "game_play":
        return b.game_play(page_id, psid, score=req.score, payload=req.payload)
    if req.target_mid:  # feedback on one bot message (thumbs up/down)
        return b.response_feedback(page_id, psid, req.target_mid, good=(req.score or 5) >= 3)
    return b.messaging_feedback(
        page_id, psid, score=req.score if req.score is not None else 5, follow_up=req.text
    )


def _handover(
    b: EventBuilder, page_id: str, psid: str, req: ActionRequest, app_id: str
) -> BuiltEvent:
    inbox = str(PAGE_INBOX_APP_ID)
    if req.mode == "pass":  # the Page Inbox hands the thread to the app
        return b.pass_thread_control(
            page_id, psid, previous_owner_app_id=inbox, new_owner_app_id=app_id, metadata=req.reason
        )
    if req.mode == "take":  # the Page Inbox takes the thread from the app
        return b.take_thread_control(
            page_id, psid, previous_owner_app_id=app_id, new_owner_app_id=inbox, metadata=req.reason
        )
    return b.request_thread_control(
        page_id, psid, requested_owner_app_id=inbox, metadata=req.reason or ""
    )
