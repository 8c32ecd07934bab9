"""The journal's records: what the platform saw, as plain dataclasses with ``to_dict()``.

Kept apart from ``journal.py`` (the recorder and its waiters) so readers of the control API's
JSON can see every field in one place. Send API requests are stored through
``redact_top_level`` (``redact`` does the same at any depth, copying everything).

>>> redact_top_level({"access_token": "EAAB...", "url": "/me/messages?access_token=EAAB&x=1"})
{'access_token': '[redacted]', 'url': '/me/messages?access_token=[redacted]&x=1'}
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

FINISHED_STATES = frozenset({"delivered", "dropped", "skipped"})
REDACTED = "[redacted]"
_SECRET_KEYS = frozenset({"access_token", "appsecret_proof", "app_secret", "client_secret"})
_SECRET_IN_TEXT = re.compile(r"((?:access_token|appsecret_proof)=)[^&\s\"']+")


class ActionState(StrEnum):
    """Where a user action stands in the reply accounting (``mock_meta.accounting``)."""

    NO_REPLY_EXPECTED = "no_reply_expected"  # its kind expects no answer (reads, reactions...)
    IN_FLIGHT = "in_flight"  # the bot has not acknowledged it yet; its delivery is not settled
    UNDELIVERED = "undelivered"  # never acknowledged: dropped, skipped or no app subscribed
    UNANSWERED = "unanswered"  # acknowledged with a 200, no reply attributed yet
    ANSWERED = "answered"


class Attribution(StrEnum):
    """What a reply (a successful Send API message) was counted as."""

    HELD = "held"  # an earlier in-flight action may still claim it; settles with that action
    ANSWER = "answer"  # the first reply to ``answers_mid``
    EXTRA = "extra"  # nothing owed was left to answer: a duplicate or unsolicited message


@dataclass(slots=True)
class ActionRecord:
    """A simulated user's action that produced a webhook event.

    ``mid`` is its action id (the message id for messages; ``act_N`` for reads, reactions and
    other events whose ``mid``, if any, is another message's). ``state`` is kept by the journal.
    """

    seq: int
    at: float
    psid: str
    page_id: str
    mid: str | None
    event_type: str
    expects_reply: bool = True
    answered_by: str | None = None  # message_id of the reply attributed to this action
    answered_at: float | None = None
    state: ActionState = ActionState.IN_FLIGHT
    acknowledged: bool = False  # one of its deliveries got the bot's 200
    # Journal seq before the first POST that may have reached the bot: replies recorded after
    # it can answer this action, earlier ones cannot.
    sent_mark: int | None = None
    deliveries: int = 0
    open_deliveries: int = 0
    extra_replies: int = 0
    reason: str | None = None  # why it is undelivered

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(slots=True)
class AttemptRecord:
    """One HTTP POST of a delivery (a batched POST adds one attempt to each of its deliveries)."""

    attempt: int
    at: float
    status: int | None
    latency_seconds: float
    outcome: str  # success | http_error | timeout | connection_error
    signature: str | None  # the X-Hub-Signature-256 header sent (None when missing)
    error: str | None = None
    duplicate: bool = False
    batch_size: int = 1
    # ``Journal.mark()`` taken just before the POST (None: the journal uses its current seq).
    sent_mark: int | None = None

    @property
    def reached_bot(self) -> bool:
        """The bot may have taken the event: it acked, or went silent after reading the body.
        An error status is the bot saying it did not (and a refused connection never got
        there), so neither lets a later reply count as an answer to it."""
        return self.outcome in ("success", "timeout")


@dataclass(slots=True)
class DeliveryRecord:
    """A webhook event on its way to one app; ``state`` moves pending → delivered|dropped."""

    seq: int
    delivery_id: str
    app_id: str
    page_id: str
    psid: str | None
    mid: str | None
    event_type: str
    field: str
    standby: bool
    enqueued_at: float
    state: str = "pending"  # pending | retrying | delivered | dropped | skipped
    reason: str | None = None
    delivered_at: float | None = None
    ack_latency_seconds: float | None = None
    attempts: list[AttemptRecord] = dataclasses.field(default_factory=list)
    traceparent: str | None = None  # sent with the delivery (MOCK_META_PROPAGATE_TRACEPARENT)

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(slots=True)
class SendRecord:
    """One Send API call as the mock answered it (the token is never stored)."""

    seq: int
    at: float
    page_id: str | None
    psid: str | None
    kind: str  # message | sender_action
    request: dict[str, Any]
    response: dict[str, Any]
    status: int
    error_code: int | None = None
    error_subcode: int | None = None
    message_id: str | None = None
    answers_mid: str | None = None  # the action id this reply answers (first reply only)
    time_to_reply_seconds: float | None = None
    extra: bool = False
    # How the call was made: method, path, version, token_source, trace headers.
    call: dict[str, Any] | None = None
    attribution: Attribution | None = None  # set for replies only (``is_reply``)
    extra_for: str | None = None  # for an extra: the answered action it repeats, if any

    @property
    def ok(self) -> bool:
        return self.error_code is None and 200 <= self.status < 300

    @property
    def is_reply(self) -> bool:
        """A message that reached the user (what the reply waiters look for)."""
        return self.ok and self.kind == "message"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(slots=True)
class AlertRecord:
    seq: int
    at: float
    app_id: str
    page_id: str
    kind: str  # failing_15m | webhooks_disabled
    message: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(slots=True)
class SubscriptionRecord:
    seq: int
    at: float
    app_id: str
    page_id: str
    change: str  # subscribed | unsubscribed | disabled | fields_changed
    fields: list[str] | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class ReplyResult:
    """What ``wait_reply`` found: the reply, how long it took, and how fast the bot acked."""

    reply: SendRecord
    time_to_reply_seconds: float
    ack_latency_seconds: float | None
    action: ActionRecord | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "reply": self.reply.to_dict(),
            "time_to_reply_seconds": self.time_to_reply_seconds,
            "ack_latency_seconds": self.ack_latency_seconds,
        }


def redact(value: Any) -> Any:
    """A deep copy of ``value`` with tokens and secrets replaced at any depth."""
    if isinstance(value, dict):
        return {
            k: (REDACTED if str(k).lower() in _SECRET_KEYS else redact(v)) for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, str) and "=" in value:
        return _SECRET_IN_TEXT.sub(rf"\1{REDACTED}", value)
    return value


def redact_top_level(value: dict[str, Any]) -> dict[str, Any]:
    """``value`` with secret keys and ``access_token=…`` strings replaced at the top level.

    Graph credentials in a Send API call — ``access_token`` / ``appsecret_proof`` fields, or a
    URL-like string carrying them — sit at the top level, so this is enough for the journal.
    It returns ``value`` itself (no copy) when nothing needs replacing: every Send API call is
    journaled, and deep-copying each request cost about a third of the handler's time.
    """
    copy: dict[str, Any] | None = None
    for key, item in value.items():
        if (key if type(key) is str else str(key)).lower() in _SECRET_KEYS:
            replacement: Any = REDACTED
        elif type(item) is str and "=" in item and _SECRET_IN_TEXT.search(item):
            replacement = _SECRET_IN_TEXT.sub(rf"\1{REDACTED}", item)
        else:
            continue
        if copy is None:
            copy = dict(value)
        copy[key] = replacement
    return value if copy is None else copy
