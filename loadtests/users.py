"""The simulated Messenger user: one PSID, one conversation, measured end to end.

Each task turn: ``POST /_mock/users/{psid}/actions`` (the mock signs and delivers the
webhook to the bot) → ``GET /_mock/wait/reply`` (a long poll that returns when the bot's
first Send API message for that action reaches the mock). The turn fires two custom rows:
``E2E / time to first reply`` (locust's clock, action sent → reply observed) and
``ACK / webhook ack (mock-observed)`` (how long the bot took to answer the webhook POST).
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from locust import FastHttpUser, constant_pacing, task

from loadtests.summary import ACK_NAME, ACK_TYPE, ACTION_NAME, E2E_NAME, E2E_TYPE, WAIT_NAME

DEFAULT_REPLY_TIMEOUT = 15.0
DEFAULT_PACE = 1.0


class ReplyTimeout(Exception):
    """No reply reached the mock in time; the message carries the mid to look up."""


class ReplyWaitFailed(Exception):
    """The wait endpoint answered something other than a reply or a timeout."""


class ConversationUser(FastHttpUser):
    """A Messenger user talking to the page: send a text, wait for the reply, repeat."""

    # Long polls hold the connection up to the reply timeout; leave headroom above it.
    network_timeout = 120.0
    connection_timeout = 10.0

    psid: str = ""
    _turns = itertools.count(1)

    def wait_time(self) -> float:
        """Start a turn every ``--pace`` seconds (closed loop: a slow reply delays the next)."""
        return constant_pacing(_option(self, "pace", DEFAULT_PACE))(self)

    def on_start(self) -> None:
        with self.client.post(
            "/_mock/users", json={}, name="/_mock/users", catch_response=True
        ) as response:
            psid = _json(response).get("psid")
            if not psid:
                response.failure(f"no psid in {response.text[:200]!r}")
                self.stop()
                return
            self.psid = str(psid)

    @task
    def converse(self) -> None:
        """One turn: send a text as the user, then wait for the bot's first reply to it."""
        text = f"hello from load test, turn {next(self._turns)}"
        started = time.perf_counter()
        with self.client.post(
            f"/_mock/users/{self.psid}/actions",
            json={"type": "text", "text": text},
            name=ACTION_NAME,
            catch_response=True,
        ) as response:
            mid = _json(response).get("mid")
            if not mid:
                response.failure(f"no mid in {response.text[:200]!r}")
                return
        self._await_reply(str(mid), started)

    def _await_reply(self, mid: str, started: float) -> None:
        timeout = _option(self, "reply_timeout", DEFAULT_REPLY_TIMEOUT)
        with self.client.get(
            "/_mock/wait/reply",
            params={"psid": self.psid, "mid": mid, "timeout": timeout},
            name=WAIT_NAME,
            catch_response=True,
        ) as response:
            status = response.status_code
            body = _json(response) if status == 200 else {}
            # A 408 is the long poll working as designed; the failure is counted once, on E2E.
            if status in (200, 408):
                response.success()
        elapsed_ms = (time.perf_counter() - started) * 1000
        error: Exception | None = None
        if status == 408:
            error = ReplyTimeout(f"no reply within {timeout:g}s for mid={mid}")
        elif status != 200:
            error = ReplyWaitFailed(f"wait/reply answered HTTP {status} for mid={mid}")
        self._fire(E2E_TYPE, E2E_NAME, elapsed_ms, error, mid)
        ack = body.get("ack_latency_seconds")
        if isinstance(ack, int | float):
            self._fire(ACK_TYPE, ACK_NAME, ack * 1000, None, mid)

    def _fire(
        self, request_type: str, name: str, ms: float, error: Exception | None, mid: str
    ) -> None:
        self.environment.events.request.fire(
            request_type=request_type,
            name=name,
            response_time=ms,
            response_length=0,
            response=None,
            context={"psid": self.psid, "mid": mid},
            exception=error,
        )


def _option(user: ConversationUser, name: str, default: float) -> float:
    options = user.environment.parsed_options
    value = getattr(options, name, None) if options is not None else None
    return float(value) if value is not None else default


def _json(response: Any) -> dict[str, Any]:
    try:
        data = response.json()
    except Exception:  # any undecodable body: the caller reports it as a failure
        return {}
    return data if isinstance(data, dict) else {}
