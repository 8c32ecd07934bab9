"""Turn a control-API user action into the webhook event Meta would send (via the builders).

>>> sorted(WINDOW_OPENING)[:3]
['attachment', 'message_edit', 'optin']
"""

from __future__ import annotations

from collections.abc import Callable

from mock_meta.builders import PAGE_INBOX_APP_ID, BuiltEvent, EventBuilder
from mock_meta.control_models import (
    AccountLinkingAction,
    AttachmentAction,
    FeedbackAction,
    GamePlayAction,
    HandoverAction,
    MessageEditAction,
    OptinAction,
    PolicyEnforcementAction,
    PostbackAction,
    QuickReplyAction,
    ReactionAction,
    ReadAction,
    ReferralAction,
    StandbyTextAction,
    TextAction,
    UserAction,
)

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
    req: UserAction,
    *,
    app_id: str | None = None,
    last_bot_message: Callable[[], str | None] = lambda: None,
) -> BuiltEvent:
    """The event for ``req``; raises ValueError with a reason a test author can act on.

    ``app_id`` is the bot's app (handover target); ``last_bot_message`` supplies the default
    reaction target.
    """
    match req:
        case TextAction():
            return b.text(page_id, psid, _non_empty(req.text, "text"), reply_to=req.reply_to)
        case StandbyTextAction():
            return b.text(page_id, psid, _non_empty(req.text, "standby_text"), standby=True)
        case QuickReplyAction():
            return b.quick_reply(page_id, psid, req.text or req.payload, req.payload)
        case AttachmentAction():
            return b.attachment(
                page_id, psid, req.attachment_type, url=req.url, count=req.count, text=req.text
            )
        case PostbackAction():
            title = req.title or "Get Started"
            return b.postback(
                page_id, psid, req.payload, title=title, ref=req.ref, source=req.source
            )
        case ReactionAction():
            target = req.target_mid or last_bot_message()
            if target is None:
                raise ValueError(
                    "reaction needs 'target_mid' (the bot has not messaged this user yet)"
                )
            return b.reaction(page_id, psid, target, req.reaction, action=req.action)
        case ReadAction():
            return b.read(page_id, psid, b.now_ms())
        case ReferralAction():
            return b.referral(page_id, psid, req.ref or "harness", source=req.source)
        case OptinAction():
            return b.optin(page_id, psid, payload=req.payload or "SIGNUP", ref=req.ref)
        case MessageEditAction():
            return b.message_edit(
                page_id, psid, req.target_mid, _non_empty(req.text, "message_edit")
            )
        case HandoverAction():
            return _handover(b, page_id, psid, req, app_id or str(PAGE_INBOX_APP_ID))
        case PolicyEnforcementAction():
            return b.policy_enforcement(page_id, req.action, reason=req.reason)
        case AccountLinkingAction():
            return b.account_linking(page_id, psid, linked=req.linked)
        case GamePlayAction():
            return b.game_play(page_id, psid, score=req.score, payload=req.payload)
        case FeedbackAction() if req.target_mid:  # thumbs up/down on one bot message
            return b.response_feedback(page_id, psid, req.target_mid, good=(req.score or 5) >= 3)
        case FeedbackAction():
            score = req.score if req.score is not None else 5
            return b.messaging_feedback(page_id, psid, score=score, follow_up=req.text)
    raise ValueError(f"unknown action {type(req).__name__}")  # unreachable: the union is closed


def _non_empty(text: str, kind: str) -> str:
    if not text:
        raise ValueError(f"{kind} needs a non-empty 'text'")
    return text


def _handover(
    b: EventBuilder, page_id: str, psid: str, req: HandoverAction, app_id: str
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
