"""Request bodies of the control API (they are also its OpenAPI documentation)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, TypeAdapter, WithJsonSchema

from mock_meta.retry_profile import SuccessRule
from mock_meta.wire import SignatureMode

MAX_USER_TEXT = 20_000

ActionType = Literal[
    "text",
    "quick_reply",
    "attachment",
    "postback",
    "reaction",
    "read",
    "referral",
    "optin",
    "message_edit",
    "handover",
    "policy_enforcement",
    "account_linking",
    "game_play",
    "feedback",
    "standby_text",
]


class _Strict(BaseModel):
    """Unknown keys and NaN/Infinity are refused (422): a NaN timeout once stalled the engine.
    pydantic already refuses lone surrogates in ``str`` fields; see :data:`UserText`."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def _user_text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    if len(value) > MAX_USER_TEXT:
        raise ValueError(f"must be at most {MAX_USER_TEXT} characters")
    return value


# What a user types. Unlike every other string it may hold a lone surrogate (e.g. an emoji
# cut in half): Meta relays such text escaped as ``\\ud83d``, the input that breaks bots,
# so the mock must be able to deliver it. The reference is silent on whether Meta filters it.
UserText = Annotated[
    str,
    PlainValidator(_user_text),
    WithJsonSchema({"type": "string", "maxLength": MAX_USER_TEXT}),
]


class AppCreate(_Strict):
    app_id: str | None = Field(
        default=None, pattern=r"^\d{1,20}$", description="Generated when absent."
    )
    secret: str = Field(min_length=1, max_length=200)
    verify_token: str = Field(default="", max_length=200)
    callback_url: str = Field(default="", max_length=2000)
    name: str = Field(default="Harness Test App", max_length=200)
    fields: list[str] | None = Field(
        default=None, description="App-level fields; all Messenger fields by default."
    )


class PageCreate(_Strict):
    page_id: str | None = Field(
        default=None, pattern=r"^\d{1,20}$", description="Generated when absent."
    )
    name: str = Field(default="Test Page", max_length=200)
    token: str | None = Field(
        default=None, min_length=1, max_length=500, description="Generated when absent."
    )
    app_id: str | None = Field(
        default=None, description="App the token is issued for; the first app by default."
    )
    subscribed_fields: list[str] | None = Field(
        default=None, description="Page-level fields; all Messenger fields by default, [] for none."
    )


class UserCreate(_Strict):
    psid: str | None = Field(
        default=None, pattern=r"^\d{1,20}$", description="Generated when absent."
    )
    page_id: str | None = Field(default=None, description="The first page by default.")
    first_name: str = Field(default="Test", max_length=100)
    last_name: str = Field(default="User", max_length=100)
    locale: str = Field(default="en_US", max_length=10)
    open_window: bool = Field(
        default=False, description="Pretend the user wrote just now, so the Page may message them."
    )


class HandshakeRequest(_Strict):
    app_id: str | None = Field(default=None, description="The first app by default.")
    callback_url: str | None = Field(
        default=None, max_length=2000, description="The app's by default."
    )
    verify_token: str | None = Field(
        default=None, max_length=500, description="The app's by default."
    )


class _Action(_Strict):
    page_id: str | None = Field(
        default=None,
        max_length=64,
        description="The page the user writes to; needed only when the PSID is on several pages.",
    )


_Mid = Annotated[str, Field(min_length=1, max_length=200)]


class TextAction(_Action):
    """The user types a message (``message.text``); opens the 24 h window."""

    type: Literal["text"]
    text: UserText = Field(description="May hold a lone surrogate, as a cut emoji would.")
    reply_to: _Mid | None = Field(default=None, description="mid of the message quoted.")


class StandbyTextAction(_Action):
    """A text delivered on ``standby[]`` (another app owns the thread)."""

    type: Literal["standby_text"]
    text: UserText


class QuickReplyAction(_Action):
    """The user taps a quick reply: ``text`` is its title, ``payload`` what the bot set."""

    type: Literal["quick_reply"]
    payload: str = Field(max_length=1000)
    text: UserText | None = Field(default=None, description="The title; the payload if absent.")


class AttachmentAction(_Action):
    """The user sends media (``count`` items of one type)."""

    type: Literal["attachment"]
    attachment_type: Literal["image", "audio", "video", "file"] = "image"
    url: str | None = Field(default=None, max_length=2000, description="A CDN URL if absent.")
    count: int = Field(default=1, ge=1, le=30)
    text: UserText | None = Field(default=None, description="A caption sent with the media.")


class PostbackAction(_Action):
    """The user taps a postback button (or Get Started)."""

    type: Literal["postback"]
    payload: str = Field(max_length=1000)
    title: str | None = Field(default=None, max_length=200, description="'Get Started' if absent.")
    ref: str | None = Field(default=None, max_length=500, description="m.me link ref.")
    source: str = Field(default="SHORTLINK", max_length=50)


class ReactionAction(_Action):
    """The user reacts to (or unreacts from) a message, by default the bot's last one."""

    type: Literal["reaction"]
    target_mid: _Mid | None = Field(default=None, description="The bot's last message if absent.")
    reaction: Literal["smile", "angry", "sad", "wow", "love", "like", "dislike", "other"] = "love"
    action: Literal["react", "unreact"] = "react"


class ReadAction(_Action):
    """The user reads the conversation up to now (``message_reads``)."""

    type: Literal["read"]


class ReferralAction(_Action):
    """The user arrives through an m.me link, ad or chat plugin (``messaging_referrals``)."""

    type: Literal["referral"]
    ref: str | None = Field(default=None, max_length=500)
    source: str = Field(default="SHORTLINK", max_length=50)


class OptinAction(_Action):
    """The user opts in (``messaging_optins``)."""

    type: Literal["optin"]
    payload: str | None = Field(default=None, max_length=1000)
    ref: str | None = Field(default=None, max_length=500)


class MessageEditAction(_Action):
    """The user edits an earlier message (``message_edits``)."""

    type: Literal["message_edit"]
    target_mid: _Mid
    text: UserText


class HandoverAction(_Action):
    """The Page Inbox passes the thread to the bot, takes it back, or asks for it."""

    type: Literal["handover"]
    mode: Literal["pass", "take", "request"] = "pass"
    reason: str | None = Field(default=None, max_length=500, description="The metadata sent.")


class PolicyEnforcementAction(_Action):
    """Meta warns, blocks or unblocks the Page (``messaging_policy_enforcement``)."""

    type: Literal["policy_enforcement"]
    action: Literal["warning", "block", "unblock"] = "warning"
    reason: str | None = Field(default=None, max_length=500)


class AccountLinkingAction(_Action):
    """The user links or unlinks an account (``messaging_account_linking``)."""

    type: Literal["account_linking"]
    linked: bool = True


class GamePlayAction(_Action):
    """The user finishes an Instant Game round (``messaging_game_plays``)."""

    type: Literal["game_play"]
    score: int | None = Field(default=None, ge=0, le=1_000_000)
    payload: str | None = Field(default=None, max_length=1000)


class FeedbackAction(_Action):
    """Feedback: thumbs on one bot message (``target_mid``), else a customer-feedback form."""

    type: Literal["feedback"]
    score: int | None = Field(default=None, ge=0, le=10, description="Form score (5 if absent).")
    target_mid: _Mid | None = Field(default=None, description="Thumbs up (>= 3) or down on it.")
    text: UserText | None = Field(default=None, description="A free-form follow-up.")


UserAction = Annotated[
    TextAction
    | StandbyTextAction
    | QuickReplyAction
    | AttachmentAction
    | PostbackAction
    | ReactionAction
    | ReadAction
    | ReferralAction
    | OptinAction
    | MessageEditAction
    | HandoverAction
    | PolicyEnforcementAction
    | AccountLinkingAction
    | GamePlayAction
    | FeedbackAction,
    Field(discriminator="type"),
]
_ACTIONS: TypeAdapter[UserAction] = TypeAdapter(UserAction)


def parse_action(fields: dict[str, Any]) -> UserAction:
    """One typed action from a dict (raises pydantic's ``ValidationError``).

    >>> parse_action({"type": "read"})
    ReadAction(page_id=None, type='read')
    """
    return _ACTIONS.validate_python(fields)


class FaultRequest(_Strict):
    code: int | None = Field(default=None, description="Graph error code; none = latency only.")
    subcode: int | None = None
    http_status: int | None = Field(default=None, ge=400, le=599)
    message: str | None = Field(default=None, max_length=500)
    latency_ms: int = Field(default=0, ge=0, le=120_000)
    probability: float = Field(default=1.0, ge=0, le=1)
    count: int | None = Field(
        default=None, ge=1, description="Uses before the fault disarms; none = until cleared."
    )
    psid: str | None = None
    sent: bool = Field(
        default=False, description="The message is really sent although the call fails (1/1357046)."
    )


class RetryProfileUpdate(_Strict):
    """Overrides of the active retry profile (``mock_meta.retry_profile``); seconds are finite."""

    base: str | None = Field(default=None, max_length=100, description="Start from this profile.")
    name: str | None = Field(default=None, max_length=100)
    timeout_seconds: float | None = Field(default=None, gt=0, le=120)
    success: SuccessRule | None = None
    immediate_retries: int | None = Field(default=None, ge=0, le=100)
    retry_delays: list[float] | None = Field(default=None, max_length=1000)
    repeat_delay: float | None = Field(default=None, gt=0)
    alert_after: float | None = Field(default=None, gt=0)
    disable_after: float | None = Field(default=None, gt=0)
    give_up_after: float | None = Field(default=None, gt=0)


class ChaosUpdate(_Strict):
    """A partial change of delivery chaos; absent keys keep their value."""

    seed: int | None = Field(default=None, description="null picks a random seed (shown after).")
    duplicate_probability: float | None = Field(default=None, ge=0, le=1)
    reorder_probability: float | None = Field(default=None, ge=0, le=1)
    batch_max_entries: int | None = Field(default=None, ge=1, le=1000)
    signature: SignatureMode | None = None


class SettingsUpdate(_Strict):
    delivery_timeout_seconds: float | None = Field(default=None, gt=0, le=120)
    success_rule: Literal["exact_200", "any_2xx"] | None = None
    retry_profile: str | RetryProfileUpdate | None = Field(
        default=None, description="A profile name, or overrides (optionally over a named 'base')."
    )
    rate_limit_per_page_per_second: int | None = Field(default=None, ge=0, le=1_000_000)
    emit_echoes: bool | None = None
    emit_deliveries: bool | None = None
    emit_reads: bool | None = None
    require_appsecret_proof: bool | None = None
    enforce_retired_tags: bool | None = None
    require_messaging_type: bool | None = None
    window_seconds: float | None = Field(default=None, gt=0)
    human_agent_window_seconds: float | None = Field(default=None, gt=0)
    expired_graph_versions: Literal["upgrade", "reject"] | None = Field(
        default=None, description="Expired Graph versions: served by the oldest, or refused."
    )


class ClockResume(_Strict):
    rate: float | None = Field(
        default=None, gt=0, le=1_000_000, description="Virtual seconds per real second."
    )


class ClockAdvance(_Strict):
    seconds: float = Field(ge=0, le=10 * 365 * 24 * 3600)
