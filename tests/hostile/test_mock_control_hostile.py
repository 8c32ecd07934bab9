"""Hostile inputs against the mock's control API and Graph surface, on one pooled connection.

Each class of input the red-team run turned into a 500 (lone surrogates, NaN/Infinity in the
clock and settings, deep nesting) must now get a short, encodable 4xx, leave the keep-alive
connection open, and leave the mock working: a good action afterwards is still delivered.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from mock_meta.client import MockMetaClient
from mock_meta.settings import DEFAULT_PAGE_TOKEN, DEFAULT_PSID, MockSettings
from mock_meta.testing import LoopbackServer, MockMetaServer

DEEP = 1000
ACTIONS = f"/_mock/users/{DEFAULT_PSID}/actions"
GRAPH_SEND = f"/v25.0/me/messages?access_token={DEFAULT_PAGE_TOKEN}"
GRAPH_BATCH = f"/v25.0/?access_token={DEFAULT_PAGE_TOKEN}"

# (method, path, raw JSON body): every one of them once answered 500 or was accepted.
HOSTILE_CONTROL = [
    ("POST", "/_mock/clock/advance", b'{"seconds": NaN}'),
    ("POST", "/_mock/clock/advance", b'{"seconds": Infinity}'),
    ("POST", "/_mock/clock/advance", b'{"seconds": -Infinity}'),
    ("POST", "/_mock/clock/resume", b'{"rate": NaN}'),
    ("PUT", "/_mock/settings", b'{"window_seconds": Infinity}'),
    ("PUT", "/_mock/settings", b'{"delivery_timeout_seconds": NaN}'),
    ("PUT", "/_mock/settings", b'{"retry_profile": {"timeout_seconds": NaN}}'),
    ("PUT", "/_mock/settings", b'{"retry_profile": {"retry_delays": [1, Infinity]}}'),
    ("PUT", "/_mock/chaos", b'{"duplicate_probability": NaN}'),
    ("PUT", "/_mock/chaos", b'{"seed": "\\udc00"}'),
    ("PUT", "/_mock/chaos", b'{"\\ud800": 1}'),
    ("POST", "/_mock/faults", b'{"code": 1, "probability": NaN}'),
    ("POST", "/_mock/faults", b'{"code": 1, "message": "\\ud83d"}'),
    ("POST", "/_mock/users", b'{"first_name": "\\ud800"}'),
    ("POST", "/_mock/pages", b'{"name": "\\udfff"}'),
    ("POST", "/_mock/apps", b'{"secret": "s", "verify_token": "\\ud83d"}'),
    ("POST", ACTIONS, b'{"type": "postback", "payload": "\\ud83d"}'),
    ("POST", ACTIONS, b'{"type": "text", "text": "hi", "page_id": "\\udfff"}'),
    ("POST", ACTIONS, b'{"type": "text", "text": ' + b"[" * DEEP + b"]" * DEEP + b"}"),
    ("POST", ACTIONS, b"[" * 100_000 + b"]" * 100_000),
    ("PUT", "/_mock/chaos", b'{"seed": ' + b"[" * DEEP + b"]" * DEEP + b"}"),
    ("GET", "/_mock/wait/reply?psid=1&mid=m&timeout=nan", b""),
    ("GET", "/_mock/wait/delivery?mid=m&timeout=inf", b""),
]

FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data; boundary=xyz"
# (path, content type, raw body): Graph answers (#100) in its envelope, never a 500.
HOSTILE_GRAPH = [
    (GRAPH_BATCH, FORM, b"batch=" + b"%5B" * DEEP + b"%5D" * DEEP),
    (GRAPH_BATCH, FORM, b"batch=" + b"%5B" * 100_000 + b"%5D" * 100_000),
    (GRAPH_SEND, FORM, b"recipient=%7B%22id%22%3A+NaN%7D&message=%7B%22text%22%3A%22hi%22%7D"),
    (GRAPH_SEND, "application/json", b'{"recipient": {"id": Infinity}, "message": {"text": "x"}}'),
    (GRAPH_SEND, "application/json", b"[" * 100_000 + b"]" * 100_000),
    (GRAPH_SEND, "application/json", b'{"recipient": {"id": 1e400}, "message": {"text": "x"}}'),
    (GRAPH_SEND, "multipart/form-data", b"--xyz\r\n"),
    (GRAPH_SEND, MULTIPART, b"--xyz\r\nContent-Disposition: form-data\r\n\r\nx\r\n--xyz--\r\n"),
    (GRAPH_SEND, MULTIPART, b"not multipart at all"),
]


@dataclass
class Receiver:
    """A bot stand-in that acks every webhook and keeps the raw bodies."""

    bodies: list[bytes] = field(default_factory=list)

    async def webhook(self, request: Request) -> PlainTextResponse:
        if request.method == "GET":
            return PlainTextResponse(request.query_params.get("hub.challenge", ""))
        self.bodies.append(await request.body())
        return PlainTextResponse("EVENT_RECEIVED")


@dataclass
class World:
    mock: MockMetaServer
    http: httpx.AsyncClient
    receiver: Receiver


@pytest.fixture
async def world() -> AsyncIterator[World]:
    receiver = Receiver()
    bot = Starlette(routes=[Route("/webhook", receiver.webhook, methods=["GET", "POST"])])
    async with LoopbackServer(bot) as bot_server:
        settings = MockSettings(port=0, callback_url=f"{bot_server.base_url}/webhook")
        async with MockMetaServer(settings) as mock:
            # One connection, so a reset after a 4xx would show as a new client port.
            limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
            async with httpx.AsyncClient(base_url=mock.base_url, limits=limits) as http:
                yield World(mock, http, receiver)


def _client_port(response: httpx.Response) -> int:
    port: int = response.extensions["network_stream"].get_extra_info("client_addr")[1]
    return port


async def _send_text_and_wait(world: World, text: str) -> httpx.Response:
    action = await world.http.post(ACTIONS, json={"type": "text", "text": text})
    assert action.status_code == 200, action.text
    settled = await world.http.get("/_mock/wait/delivery", params={"mid": action.json()["mid"]})
    assert settled.status_code == 200, settled.text
    assert settled.json()["state"] == "delivered", settled.json()
    return action


async def test_hostile_control_bodies_get_an_encodable_4xx_on_a_kept_connection(
    world: World,
) -> None:
    first = await world.http.get("/_mock/health")
    port = _client_port(first)
    for method, path, body in HOSTILE_CONTROL:
        headers = {"content-type": "application/json"} if body else {}
        response = await world.http.request(method, path, content=body, headers=headers)
        case = f"{method} {path[:40]} {body[:50]!r}"
        assert 400 <= response.status_code < 500, (case, response.status_code, response.text)
        reason = response.json()["detail"]
        assert isinstance(reason, str) and reason, case
        response.content.decode("ascii")  # encodable: escapes only, never raw surrogates
        assert response.headers.get("connection", "").lower() != "close", case
        assert _client_port(response) == port, f"connection was reset after {case}"
    # The mock still works on the same connection: settings are unchanged, a user reaches the bot.
    settings = (await world.http.get("/_mock/settings")).json()
    assert settings["retry_profile"]["timeout_seconds"] == 5.0
    assert settings["window_seconds"] == 24 * 3600
    action = await _send_text_and_wait(world, "still here")
    assert _client_port(action) == port


async def test_hostile_graph_bodies_get_graph_errors_on_a_kept_connection(world: World) -> None:
    port = _client_port(await world.http.get("/_mock/health"))
    for path, content_type, body in HOSTILE_GRAPH:
        headers = {"content-type": content_type}
        response = await world.http.post(path, content=body, headers=headers)
        case = f"{content_type} {body[:40]!r}"
        assert response.status_code == 400, (case, response.text)
        assert response.json()["error"]["code"] == 100, case
        assert _client_port(response) == port, f"connection was reset after {case}"
    journal = await world.http.get("/_mock/journal/sends")  # what was refused stays readable
    assert journal.status_code == 200


async def test_nan_delivery_timeout_is_refused_and_deliveries_still_settle(world: World) -> None:
    refused = await world.http.put(
        "/_mock/settings",
        content=b'{"retry_profile": {"timeout_seconds": NaN}}',
        headers={"content-type": "application/json"},
    )
    assert refused.status_code == 422
    assert "finite" in refused.json()["detail"]
    await _send_text_and_wait(world, "delivered despite the NaN attempt")


async def test_a_user_text_with_a_lone_surrogate_is_delivered_escaped_as_meta_would(
    world: World,
) -> None:
    """Only what a user types may hold a lone surrogate: it is the input that breaks bots."""
    async with MockMetaClient(world.mock.base_url) as mock:
        action = await mock.user(DEFAULT_PSID).send_text("half an emoji \ud83d")
        assert (await mock.wait_for_delivery(action.action_id))["state"] == "delivered"
    body = world.receiver.bodies[-1]
    assert b'"text":"half an emoji \\ud83d"' in body
    assert json.loads(body)["entry"][0]["messaging"][0]["message"]["text"].endswith("\ud83d")


async def test_a_lone_surrogate_the_bot_sent_is_journalled_and_readable(world: World) -> None:
    await world.http.post("/_mock/users", json={"psid": "77", "open_window": True})
    sent = await world.http.post(
        GRAPH_SEND,
        content=b'{"recipient":{"id":"77"},"messaging_type":"RESPONSE","message":{"text":"\\ud83d"},'
        b'"\\udfff":1}',
        headers={"content-type": "application/json"},
    )
    assert sent.status_code == 200, sent.text
    journal = await world.http.get("/_mock/journal/sends", params={"psid": "77"})
    assert journal.status_code == 200
    assert journal.json()["items"][-1]["request"]["message"]["text"] == "\ud83d"


FUZZ_ROUTES = [
    ("POST", ACTIONS),
    ("PUT", "/_mock/chaos"),
    ("PUT", "/_mock/settings"),
    ("POST", "/_mock/faults"),
    ("POST", "/_mock/clock/advance"),
    ("POST", "/_mock/clock/resume"),
    ("POST", "/_mock/users"),
    ("POST", "/_mock/apps"),
    ("POST", GRAPH_SEND),
    ("POST", GRAPH_BATCH),
    ("POST", f"/v25.0/me/personas?access_token={DEFAULT_PAGE_TOKEN}"),
    ("POST", f"/v25.0/me/pass_thread_control?access_token={DEFAULT_PAGE_TOKEN}"),
    ("POST", f"/v25.0/me/message_attachments?access_token={DEFAULT_PAGE_TOKEN}"),
]
FUZZ_KEYS = [
    "type", "text", "seconds", "rate", "seed", "retry_profile", "window_seconds", "code",
    "probability", "psid", "page_id", "name", "secret", "recipient", "message", "batch",
    "target_app_id", "count", "score", "mode", "sender_action", "persona_id", "tag",
]  # fmt: skip
FUZZ_VALUES = [
    b"1e400", b"-1e400", b"1" + b"0" * 5000, b'"\\ud800"', b'{"\\udc00": 1}', b"null",
    b"true", b"[]", b"{}", b'"x"', b"-1", b"0", b"1.5", b"[[[[[[]]]]]]", b'{"id": NaN}',
    b'"' + b"a" * 50_000 + b'"',
]  # fmt: skip
KINDS = [b"text", b"reaction", b"feedback", b"postback", b"handover", b"attachment"]


async def test_seeded_fuzz_of_control_and_graph_bodies_never_answers_5xx(world: World) -> None:
    rng = random.Random(7)
    for _ in range(400):
        method, path = rng.choice(FUZZ_ROUTES)
        parts = [
            b'"%s": %s' % (rng.choice(FUZZ_KEYS).encode(), rng.choice(FUZZ_VALUES))
            for _ in range(rng.randint(1, 4))
        ]
        if path == ACTIONS and rng.random() < 0.7:
            parts.append(b'"type": "%s"' % rng.choice(KINDS))
        body = b"{" + b", ".join(parts) + b"}"
        response = await world.http.request(
            method, path, content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code < 500, (path, body[:200], response.text[:200])
    for journal in ("sends", "actions", "deliveries"):
        assert (await world.http.get(f"/_mock/journal/{journal}")).status_code == 200
    for view in ("/_mock/config", "/_mock/settings", "/_mock/chaos", "/_mock/faults"):
        assert (await world.http.get(view)).status_code == 200
