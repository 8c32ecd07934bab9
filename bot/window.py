"""The 24-hour standard messaging window and its tags (pure; reference §7).

>>> decide_window(last_action_ms=1_000, now_ms=2_000).allowed
True
>>> decide_window(last_action_ms=None, now_ms=2_000).reason
'outside_window'
"""

from __future__ import annotations

from dataclasses import dataclass

DAY_SECONDS = 24 * 3600
HUMAN_AGENT = "HUMAN_AGENT"
# Tags Meta answers with error 100 since 27 Apr 2026: never worth a call.
RETIRED_TAGS = frozenset({"ACCOUNT_UPDATE", "CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE"})
# Tags that extend the window to 7 days after the user's last message. CUSTOMER_FEEDBACK is
# only valid with the customer_feedback template; Graph enforces that, not us.
EXTENDED_TAGS = frozenset({HUMAN_AGENT, "CUSTOMER_FEEDBACK"})


@dataclass(frozen=True, slots=True)
class WindowDecision:
    """Whether a reply may be sent now, with which ``messaging_type``, and why.

    ``reason`` is one of ``in_window``, ``extended_tag``, ``outside_window``, ``retired_tag``.
    """

    allowed: bool
    messaging_type: str
    reason: str


def decide_window(
    last_action_ms: int | None,
    now_ms: int,
    tag: str | None = None,
    *,
    window_seconds: float = DAY_SECONDS,
    human_agent_window_seconds: float = 7 * DAY_SECONDS,
) -> WindowDecision:
    """Apply the window rule to one reply.

    ``last_action_ms`` is the user's last window-opening action (``None`` when unknown, which
    never allows a send). With a tag the reply goes out as ``MESSAGE_TAG``; without, ``RESPONSE``.
    """
    messaging_type = "MESSAGE_TAG" if tag else "RESPONSE"
    if tag in RETIRED_TAGS:
        return WindowDecision(False, messaging_type, "retired_tag")
    if last_action_ms is None:
        return WindowDecision(False, messaging_type, "outside_window")
    elapsed_ms = now_ms - last_action_ms
    if elapsed_ms < window_seconds * 1000:
        return WindowDecision(True, messaging_type, "in_window")
    if tag in EXTENDED_TAGS and elapsed_ms < human_agent_window_seconds * 1000:
        return WindowDecision(True, messaging_type, "extended_tag")
    return WindowDecision(False, messaging_type, "outside_window")
