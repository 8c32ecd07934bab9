"""Pure validation of a Send API call against platform state (reference §5–§7).

``validate_send`` raises a :class:`GraphError` carrying Meta's code/subcode for the first
rule the call breaks, or returns a :class:`ValidSend`. No I/O: state is read through the
small :class:`SendDirectory` Protocol and time is passed in as ``now``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from mock_meta.graph_body import UploadedFile
from mock_meta.graph_errors import GraphError, graph_error
from mock_meta.templates import check_template

MAX_TEXT_CHARS = 2000
MAX_QUICK_REPLIES = 13
MAX_QUICK_REPLY_TITLE = 20
MAX_PAYLOAD_CHARS = 1000
MAX_METADATA_CHARS = 999  # "< 1000 characters"
MAX_IMAGES = 30

MESSAGING_TYPES = ("RESPONSE", "UPDATE", "MESSAGE_TAG", "UTILITY")
ACTIVE_TAGS = ("HUMAN_AGENT", "CUSTOMER_FEEDBACK")
RETIRED_TAGS = ("ACCOUNT_UPDATE", "CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE")
SENDER_ACTIONS = ("typing_on", "typing_off", "mark_seen", "react", "unreact")
ATTACHMENT_TYPES = ("image", "audio", "video", "file", "template")
QUICK_REPLY_TYPES = ("text", "user_phone_number", "user_email")
_MESSAGE_CONTENT = ("text", "attachment", "attachments", "sticker_id", "template")
# Fields that may accompany a sender_action (reference §5.5).
_ACTION_FIELDS = frozenset(
    {
        "recipient",
        "sender_action",
        "payload",
        "access_token",
        "appsecret_proof",
        "messaging_type",
        "persona_id",
    }
)


class SendDirectory(Protocol):
    """What validation reads from platform state (``PlatformState`` implements it)."""

    def token_grant(self, token: str) -> Any:  # -> TokenGrant | None (page_id, app_id)
        ...

    def app_secret(self, app_id: str) -> str | None: ...

    def has_user(self, page_id: str, psid: str) -> bool: ...

    def last_inbound(self, page_id: str, psid: str) -> float | None: ...


@dataclass(frozen=True)
class SendRules:
    """The policy switches of ``MockSettings`` that validation needs."""

    require_appsecret_proof: bool = False
    enforce_retired_tags: bool = True
    require_messaging_type: bool = False
    window_seconds: float = 24 * 3600
    human_agent_window_seconds: float = 7 * 24 * 3600


@dataclass(frozen=True)
class ValidSend:
    page_id: str
    app_id: str
    psid: str
    message: dict[str, Any] | None
    sender_action: str | None
    messaging_type: str | None
    tag: str | None

    @property
    def is_message(self) -> bool:
        return self.message is not None


TokenSource = Literal["query", "body", "header", "batch"]


def extract_token(
    query: Mapping[str, str], fields: Mapping[str, Any], authorization: str | None
) -> str | None:
    """Token from ``?access_token=``, a body/form ``access_token`` or ``Authorization: Bearer``."""
    return locate_token(query, fields, authorization)[0]


def locate_token(
    query: Mapping[str, str], fields: Mapping[str, Any], authorization: str | None
) -> tuple[str | None, TokenSource | None]:
    """The token and where it came from, in Graph's order of precedence."""
    token = query.get("access_token")
    if token:
        return token, "query"
    body_token = fields.get("access_token")
    if isinstance(body_token, str) and body_token:
        return body_token, "body"
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() in ("bearer", "oauth") and value.strip():
            return value.strip(), "header"
    return None, None


def appsecret_proof(app_secret: str, token: str) -> str:
    return hmac.new(app_secret.encode(), token.encode(), hashlib.sha256).hexdigest()


def authorize(
    token: str | None,
    proof: str | None,
    *,
    directory: SendDirectory,
    require_proof: bool,
) -> Any:
    """Resolve a page token to its grant, checking ``appsecret_proof``; 190/100 otherwise."""
    if not token:
        raise graph_error(190, None, "An access token is required to request this resource.")
    grant = directory.token_grant(token)
    if grant is None:
        raise graph_error(190)
    if proof is None:
        if require_proof:
            raise GraphError(
                100,
                None,
                "API calls from the server require an appsecret_proof argument",
                type_="GraphMethodException",
            )
        return grant
    secret = directory.app_secret(grant.app_id) or ""
    if not hmac.compare_digest(str(proof), appsecret_proof(secret, token)):
        raise GraphError(
            100,
            None,
            "Invalid appsecret_proof provided in the API argument",
            type_="GraphMethodException",
        )
    return grant


def validate_send(
    fields: Mapping[str, Any],
    *,
    node: str,
    grant: Any,
    directory: SendDirectory,
    now: float,
    rules: SendRules,
) -> ValidSend:
    """Check an authorized ``POST /{node}/messages``; raise GraphError on the first breach."""
    if node != "me" and node != grant.page_id:
        raise graph_error(
            100,
            33,
            f"Unsupported post request. Object with ID '{_short(node)}' does not exist, cannot be "
            "loaded due to missing permissions, or does not support this operation.",
        )
    psid = _recipient(fields.get("recipient"))
    if not directory.has_user(grant.page_id, psid):
        raise graph_error(100, 2018001)

    message = fields.get("message")
    action = fields.get("sender_action")
    if message is not None and action is not None:
        raise graph_error(100, 2018014)
    if message is None and action is None:
        raise graph_error(100, None, "param message or sender_action must be non-empty.")

    messaging_type = fields.get("messaging_type")
    tag = fields.get("tag")
    if action is not None:
        _check_action(action, fields)
    else:
        _check_message(message, has_upload=isinstance(fields.get("filedata"), UploadedFile))
        messaging_type, tag = _check_type_and_tag(messaging_type, tag, message, rules)
    _check_window(
        directory.last_inbound(grant.page_id, psid), now, messaging_type, tag, message, rules
    )
    return ValidSend(
        page_id=grant.page_id,
        app_id=grant.app_id,
        psid=psid,
        message=message if action is None else None,
        sender_action=action,
        messaging_type=messaging_type,
        tag=tag,
    )


def _short(value: str) -> str:
    return value[:64]


def _recipient(recipient: Any) -> str:
    if recipient is None or recipient == "":
        raise graph_error(100, None, "The parameter recipient is required")
    if not isinstance(recipient, dict):
        raise graph_error(100, None, "param recipient must be a JSON object")
    psid = recipient.get("id")
    if isinstance(psid, int) and not isinstance(psid, bool):
        psid = str(psid)
    if not isinstance(psid, str) or not psid:
        # user_ref / post_id / comment_id / phone_number recipients are not modelled.
        raise graph_error(100, 2018001)
    return psid


def _check_action(action: Any, fields: Mapping[str, Any]) -> None:
    if action not in SENDER_ACTIONS:
        raise graph_error(
            100, None, f"Param sender_action must be one of {{{', '.join(SENDER_ACTIONS)}}}"
        )
    extra = set(fields) - _ACTION_FIELDS
    if extra & {"message", "tag", "notification_type"}:
        raise graph_error(100, 2018014)
    if action in ("react", "unreact"):
        payload = fields.get("payload")
        if not isinstance(payload, dict) or not isinstance(payload.get("message_id"), str):
            raise graph_error(100, None, "param payload[message_id] is required for react/unreact")
        if action == "react" and not isinstance(payload.get("reaction"), str):
            raise graph_error(100, None, "param payload[reaction] is required for react")


def _check_message(message: Any, *, has_upload: bool = False) -> None:
    if not isinstance(message, dict):
        raise graph_error(100, None, "param message must be a JSON object")
    text = message.get("text")
    if not any(message.get(key) not in (None, "", []) for key in _MESSAGE_CONTENT):
        raise graph_error(100, 2018034)
    if text is not None:
        if not isinstance(text, str):
            raise graph_error(100, None, "param message[text] must be a string")
        if len(text) > MAX_TEXT_CHARS:
            raise graph_error(
                100,
                None,
                f"Length of param message[text] must be less than or equal to {MAX_TEXT_CHARS}",
            )
        if message.get("attachment") is not None or message.get("attachments") is not None:
            raise graph_error(
                100, None, "Only one of message[text] or message[attachment] may be set"
            )
    if message.get("attachment") is not None:
        _check_attachment(message["attachment"], has_upload=has_upload)
    if message.get("attachments") is not None:
        _check_attachments(message["attachments"])
    if message.get("quick_replies") is not None:
        _check_quick_replies(message["quick_replies"])
    metadata = message.get("metadata")
    if metadata is not None and (
        not isinstance(metadata, str) or len(metadata) > MAX_METADATA_CHARS
    ):
        raise graph_error(
            100, None, "param message[metadata] must be a string of less than 1000 characters"
        )


def _check_attachment(attachment: Any, *, has_upload: bool = False) -> None:
    if not isinstance(attachment, dict) or attachment.get("type") not in ATTACHMENT_TYPES:
        raise graph_error(
            100,
            None,
            f"param message[attachment][type] must be one of {{{', '.join(ATTACHMENT_TYPES)}}}",
        )
    payload = attachment.get("payload")
    if not isinstance(payload, dict):
        raise graph_error(100, None, "param message[attachment][payload] must be a JSON object")
    if attachment["type"] == "template":
        if not isinstance(payload.get("template_type"), str):
            raise graph_error(
                100, None, "param message[attachment][payload][template_type] is required"
            )
        check_template(payload)
    # A multipart call's ``filedata`` part is the file itself (reference §5.1).
    if attachment["type"] != "template" and not (
        payload.get("url") or payload.get("attachment_id") or has_upload
    ):
        raise graph_error(
            100, None, "param message[attachment][payload] needs url, attachment_id or filedata"
        )


def _check_attachments(attachments: Any) -> None:
    if not isinstance(attachments, list) or not 1 <= len(attachments) <= MAX_IMAGES:
        raise graph_error(
            100, None, f"param message[attachments] must hold 1 to {MAX_IMAGES} images"
        )
    for item in attachments:
        if not isinstance(item, dict) or item.get("type") != "image":
            raise graph_error(100, None, "param message[attachments] accepts images only")
        _check_attachment(item)


def _check_quick_replies(replies: Any) -> None:
    if not isinstance(replies, list):
        raise graph_error(100, None, "param message[quick_replies] must be an array")
    if len(replies) > MAX_QUICK_REPLIES:
        raise graph_error(
            100,
            None,
            f"param message[quick_replies] must have at most {MAX_QUICK_REPLIES} elements",
        )
    for reply in replies:
        if (
            not isinstance(reply, dict)
            or reply.get("content_type", "text") not in QUICK_REPLY_TYPES
        ):
            raise graph_error(100, None, "param message[quick_replies][content_type] is invalid")
        if reply.get("content_type", "text") != "text":
            continue
        title = reply.get("title")
        if title is None and not reply.get("image_url"):
            raise graph_error(100, None, "param message[quick_replies][title] is required")
        if title is not None and (not isinstance(title, str) or len(title) > MAX_QUICK_REPLY_TITLE):
            limit = MAX_QUICK_REPLY_TITLE
            raise graph_error(
                100, None, f"param message[quick_replies][title] must be at most {limit} chars"
            )
        payload = reply.get("payload")
        if payload is not None and (
            not isinstance(payload, str | int) or len(str(payload)) > MAX_PAYLOAD_CHARS
        ):
            raise graph_error(
                100,
                None,
                f"param message[quick_replies][payload] must be at most {MAX_PAYLOAD_CHARS} chars",
            )


def _check_type_and_tag(
    messaging_type: Any, tag: Any, message: Any, rules: SendRules
) -> tuple[str | None, str | None]:
    if messaging_type is None:
        if rules.require_messaging_type:
            raise graph_error(100, None, "param messaging_type is required")
        # Older clients omit it; a tag alone means a tagged message.
        messaging_type = "MESSAGE_TAG" if tag is not None else None
    elif messaging_type not in MESSAGING_TYPES:
        raise graph_error(
            100, None, f"Param messaging_type must be one of {{{', '.join(MESSAGING_TYPES)}}}"
        )
    if messaging_type != "MESSAGE_TAG":
        return messaging_type, None
    if tag is None:
        raise graph_error(100, None, "param tag is required when messaging_type is MESSAGE_TAG")
    if tag in RETIRED_TAGS:
        if rules.enforce_retired_tags:
            raise graph_error(
                100, None, f"The tag {tag} is no longer supported. Use utility messages instead."
            )
        return messaging_type, tag
    if tag not in ACTIVE_TAGS:
        raise graph_error(
            100, None, f"Param tag must be one of {{{', '.join(ACTIVE_TAGS + RETIRED_TAGS)}}}"
        )
    if tag == "CUSTOMER_FEEDBACK" and _template_type(message) != "customer_feedback":
        raise graph_error(
            100,
            None,
            "The CUSTOMER_FEEDBACK tag can only be used with the customer feedback template",
        )
    return messaging_type, tag


def _template_type(message: Any) -> str | None:
    attachment = message.get("attachment") if isinstance(message, dict) else None
    if isinstance(attachment, dict) and isinstance(attachment.get("payload"), dict):
        value = attachment["payload"].get("template_type")
        return value if isinstance(value, str) else None
    return None


def _check_window(
    last_inbound: float | None,
    now: float,
    messaging_type: str | None,
    tag: str | None,
    message: Any,
    rules: SendRules,
) -> None:
    if messaging_type == "UTILITY" and isinstance(message, dict) and message.get("template"):
        return  # pre-approved utility templates may be sent outside the window
    if messaging_type == "MESSAGE_TAG" and tag in RETIRED_TAGS:
        return  # only reachable with enforcement off: the pre-2026 behaviour
    limit = rules.human_agent_window_seconds if tag in ACTIVE_TAGS else rules.window_seconds
    if last_inbound is None or now - last_inbound > limit:
        raise graph_error(10, 2018278)
