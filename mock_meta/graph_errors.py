"""Graph API errors exactly as Meta shapes them: envelope, HTTP status and headers.

>>> err = graph_error(10, 2018278)
>>> err.http_status, err.body("AbC")["error"]["message"][:5]
(400, '(#10)')

Statuses follow reference §5.7: 400 by default, 500 for the transient codes 1 and 2 (which
also carry ``is_transient: true``); code 190 answers carry ``WWW-Authenticate``.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

OAUTH = "OAuthException"
METHOD = "GraphMethodException"

# (code, subcode) -> (type, message without the "(#code) " prefix). Reference §5.7 and §6.
CATALOGUE: dict[tuple[int, int | None], tuple[str, str]] = {
    (1, None): (OAUTH, "An unknown error has occurred."),
    (1, 99): (OAUTH, "An unknown error occurred"),
    (1, 1357046): ("http", "Received invalid JSON reply."),
    (2, None): (OAUTH, "An unexpected error has occurred. Please retry your request later."),
    (4, None): (OAUTH, "Application request limit reached"),
    (10, None): (OAUTH, "Application does not have permission for this action"),
    (10, 2018278): (
        OAUTH,
        "This message is sent outside of allowed window. Learn more about the new policy here: "
        "https://developers.facebook.com/docs/messenger-platform/policy-overview",
    ),
    (10, 2018108): (OAUTH, "This person cannot receive messages at this time."),
    (10, 1893063): (OAUTH, "This Page is temporarily restricted from sending messages."),
    (17, None): (OAUTH, "User request limit reached"),
    (32, None): (OAUTH, "Page request limit reached"),
    (100, None): (OAUTH, "Invalid parameter"),
    (100, 33): (
        METHOD,
        "Unsupported request. Object does not exist, cannot be loaded due to missing "
        "permissions, or does not support this operation.",
    ),
    (100, 2018001): (OAUTH, "No matching user found"),
    (100, 2018014): (OAUTH, "Cannot send both message and state at the same time"),
    (100, 2018034): (OAUTH, "Message cannot be empty, must provide valid attachment or text"),
    (100, 2018047): (OAUTH, "Upload attachment failure."),
    (100, 2018109): (OAUTH, "Attachment size exceeds allowable limit"),
    (100, 2018074): (OAUTH, "Invalid attachment ID or the attachment is not owned by this Page"),
    (100, 2018164): (OAUTH, "Incorrect App ID"),
    (190, None): (OAUTH, "Invalid OAuth access token - Cannot parse access token"),
    (190, 463): (OAUTH, "Error validating access token: Session has expired"),
    (200, None): (OAUTH, "Requires pages_messaging permission to manage the object"),
    (368, None): (OAUTH, "The action attempted has been deemed abusive or is otherwise disallowed"),
    (551, None): (OAUTH, "This person isn't available right now."),
    (613, None): (OAUTH, "Calls to this api have exceeded the rate limit."),
    (1200, None): (OAUTH, "Temporary send message failure. Please try again later."),
    (2200, None): (OAUTH, "Callback verification failed"),
    (2500, None): (OAUTH, "Unknown path components"),
    (2018300, None): (OAUTH, "Another app controls this thread"),
    (80006, None): (OAUTH, "There have been too many messages sent to this Messenger account."),
}

# Meta omits the "(#code)" prefix on token errors.
_UNPREFIXED = frozenset({190})
TRANSIENT_CODES = frozenset({1, 2})


class GraphError(Exception):
    """One Graph error answer; raise it anywhere on the Graph surface."""

    def __init__(
        self,
        code: int,
        subcode: int | None = None,
        message: str | None = None,
        *,
        type_: str | None = None,
        http_status: int | None = None,
    ) -> None:
        known_type, known_message = CATALOGUE.get(
            (code, subcode), CATALOGUE.get((code, None), (OAUTH, "An error occurred"))
        )
        text = message if message is not None else known_message
        if code not in _UNPREFIXED and not text.startswith("(#"):
            text = f"(#{code}) {text}"
        super().__init__(text)
        self.code = code
        self.subcode = subcode
        self.message = text
        self.type = type_ or known_type
        self.is_transient = code in TRANSIENT_CODES and subcode in (None, 99)
        self.http_status = http_status or (500 if self.is_transient else 400)

    def body(self, fbtrace_id: str) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message, "type": self.type, "code": self.code}
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        if self.is_transient:
            error["is_transient"] = True
        error["fbtrace_id"] = fbtrace_id
        return {"error": error}

    def headers(self) -> dict[str, str]:
        if self.code != 190:
            return {}
        # Header values must stay latin-1; the catalogue messages are ASCII.
        safe = self.message.replace('"', "'")
        return {"WWW-Authenticate": f'OAuth "Facebook Platform" "invalid_token" "{safe}"'}


def graph_error(code: int, subcode: int | None = None, message: str | None = None) -> GraphError:
    """Shorthand used by validators: ``raise graph_error(100, 2018001)``."""
    return GraphError(code, subcode, message)


def new_fbtrace_id() -> str:
    """An 11-character id shaped like Meta's ``fbtrace_id`` / ``x-fb-trace-id``."""
    return secrets.token_urlsafe(8)[:11]


def base_headers(version: str, trace_id: str) -> dict[str, str]:
    """Headers every Graph answer carries."""
    return {
        "facebook-api-version": version,
        "x-fb-trace-id": trace_id,
        "x-fb-rev": "1000000",
        "Cache-Control": "no-store",
        "Expires": "Sat, 01 Jan 2000 00:00:00 GMT",
    }


def business_use_case_usage(page_id: str, call_count_pct: int, regain_minutes: int = 0) -> str:
    """The ``x-business-use-case-usage`` header value for a Send API answer."""
    usage = {
        page_id: [
            {
                "type": "messenger",
                "call_count": max(0, min(100, call_count_pct)),
                "total_cputime": 1,
                "total_time": 1,
                "estimated_time_to_regain_access": regain_minutes,
            }
        ]
    }
    return json.dumps(usage, separators=(",", ":"))
