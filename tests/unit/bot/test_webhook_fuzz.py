"""Hostile input at GET/POST /webhook never produces a 5xx (hypothesis, in-process)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry

from bot.app import create_app
from bot.inbox_memory import MemoryInbox
from bot.signature import signature_for
from bot.testing import APP_SECRET, RecordingSendApi, make_settings

FUZZ = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=80)
json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
ids = st.one_of(st.text(max_size=12), st.integers(), st.none(), st.booleans(), json_values)
messaging_item = st.fixed_dictionaries(
    {},
    optional={
        "sender": st.fixed_dictionaries({}, optional={"id": ids, "user_ref": ids}) | json_values,
        "recipient": st.fixed_dictionaries({}, optional={"id": ids}) | json_values,
        "timestamp": st.integers() | st.floats() | json_values,
        "message": st.fixed_dictionaries(
            {},
            optional={
                "mid": ids,
                "text": json_values,
                "is_echo": json_values,
                "quick_reply": json_values,
                "attachments": json_values,
            },
        )
        | json_values,
        "postback": json_values,
        "reaction": json_values,
        "delivery": json_values,
        "read": json_values,
    },
)
entry = st.fixed_dictionaries(
    {},
    optional={
        "id": ids,
        "time": json_values,
        "messaging": st.lists(messaging_item, max_size=3) | json_values,
        "standby": st.lists(messaging_item, max_size=2) | json_values,
    },
)
envelopes = st.fixed_dictionaries(
    {},
    optional={
        "object": st.sampled_from(["page", "instagram", ""]) | json_values,
        "entry": st.lists(entry, max_size=3) | json_values,
    },
)


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        make_settings(WEBHOOK_MAX_BODY_BYTES=4096),
        inbox=MemoryInbox(),
        send_api=RecordingSendApi(),
        registry=CollectorRegistry(),
        tracer_provider=TracerProvider(),
    )
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app), base_url="http://bot.test"
        ) as c:
            yield c


@FUZZ
@given(
    params=st.dictionaries(
        st.sampled_from(["hub.mode", "hub.verify_token", "hub.challenge"]) | st.text(max_size=10),
        st.text(max_size=40),
        max_size=4,
    )
)
async def test_handshake_with_any_query_is_200_or_403(
    client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    response = await client.get("/webhook", params=params)
    assert response.status_code in (200, 403)


@FUZZ
@given(body=st.binary(max_size=6000), signature=st.none() | header_text)
async def test_unsigned_or_garbage_posts_are_4xx(
    client: httpx.AsyncClient, body: bytes, signature: str | None
) -> None:
    headers = {} if signature is None else {"X-Hub-Signature-256": signature}
    response = await client.post("/webhook", content=body, headers=headers)
    assert 400 <= response.status_code < 500


@FUZZ
@given(body=st.binary(max_size=3000))
async def test_well_signed_bytes_are_never_a_5xx(client: httpx.AsyncClient, body: bytes) -> None:
    response = await client.post(
        "/webhook", content=body, headers={"X-Hub-Signature-256": signature_for(body, APP_SECRET)}
    )
    assert response.status_code in (200, 400, 404)


@FUZZ
@given(payload=envelopes | json_values, ascii_only=st.booleans())
async def test_well_signed_json_of_any_shape_is_never_a_5xx(
    client: httpx.AsyncClient, payload: Any, ascii_only: bool
) -> None:
    body = json.dumps(payload, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    response = await client.post(
        "/webhook", content=body, headers={"X-Hub-Signature-256": signature_for(body, APP_SECRET)}
    )
    assert response.status_code in (200, 400, 404, 413)
    if response.status_code != 200:
        assert response.json()["error"]
