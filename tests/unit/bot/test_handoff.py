"""Handoff and persona calls: the Graph requests they make and how refusals surface."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from bot.handoff import PAGE_INBOX_APP_ID, Handoff, thread_passed, thread_taken
from bot.limits import LimitError
from bot.page_api import PageApi, PageApiError
from bot.personas import Personas
from bot.testing import (
    APP_SECRET,
    PAGE_ID,
    PAGE_TOKEN,
    PSID,
    event_of,
    make_settings,
    messaging_item,
)


class Graph:
    """Records requests and answers like Graph (or with the error it is given)."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.answer: tuple[int, dict[str, Any]] = (200, {"success": True})

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(self.answer[0], json=self.answer[1])

    def calls(self) -> list[tuple[str, str, Any]]:
        return [
            (r.method, r.url.path, json.loads(r.content) if r.content else None)
            for r in self.requests
        ]


@pytest.fixture
def graph() -> Graph:
    return Graph()


@pytest.fixture
async def api(graph: Graph) -> AsyncIterator[PageApi]:
    settings = make_settings(graph_api_base="https://graph.test")
    async with PageApi(settings, transport=httpx.MockTransport(graph.handle)) as page_api:
        yield page_api


async def test_pass_take_release_and_request_thread_control(graph: Graph, api: PageApi) -> None:
    handoff = Handoff(api)
    await handoff.pass_to_agent(PSID, metadata="asked for a person")
    await handoff.take_back(PSID)
    await handoff.release(PSID, metadata="done")
    await handoff.request(PSID)
    base = f"/v25.0/{PAGE_ID}"
    assert graph.calls() == [
        (
            "POST",
            f"{base}/pass_thread_control",
            {
                "recipient": {"id": PSID},
                "target_app_id": PAGE_INBOX_APP_ID,
                "metadata": "asked for a person",
            },
        ),
        ("POST", f"{base}/take_thread_control", {"recipient": {"id": PSID}}),
        ("POST", f"{base}/release_thread_control", {"recipient": {"id": PSID}, "metadata": "done"}),
        ("POST", f"{base}/request_thread_control", {"recipient": {"id": PSID}}),
    ]
    # The token goes in a header, never in the URL.
    assert all(r.headers["authorization"] == f"Bearer {PAGE_TOKEN}" for r in graph.requests)
    assert all(PAGE_TOKEN not in str(r.url) for r in graph.requests)


async def test_thread_owner_is_read_or_none_when_idle(graph: Graph, api: PageApi) -> None:
    graph.answer = (200, {"data": [{"thread_owner": {"app_id": "263902037430900"}}]})
    assert await Handoff(api).owner(PSID) == "263902037430900"
    assert graph.requests[-1].url.params["recipient"] == PSID
    graph.answer = (200, {"data": []})
    assert await Handoff(api).owner(PSID) is None


async def test_a_refusal_carries_graphs_code_and_no_token(graph: Graph, api: PageApi) -> None:
    graph.answer = (
        400,
        {
            "error": {
                "message": f"(#100) bad token {PAGE_TOKEN}",
                "code": 100,
                "error_subcode": 2018164,
            }
        },
    )
    with pytest.raises(PageApiError, match=r"pass_thread_control failed \(#100/2018164\)") as info:
        await Handoff(api, agent_app_id="1").pass_to_agent(PSID)
    assert (info.value.code, info.value.subcode) == (100, 2018164)
    assert PAGE_TOKEN not in str(info.value)


async def test_personas_are_created_listed_and_deleted(graph: Graph, api: PageApi) -> None:
    personas = Personas(api)
    graph.answer = (200, {"id": "p_42"})
    assert await personas.create("Adam", "https://example.com/adam.png") == "p_42"
    graph.answer = (200, {"data": [{"id": "p_42", "name": "Adam", "profile_picture_url": "u"}]})
    assert [p.name for p in await personas.list()] == ["Adam"]
    graph.answer = (200, {"success": True})
    await personas.delete("p_42")
    assert [(m, p) for m, p, _ in graph.calls()] == [
        ("POST", f"/v25.0/{PAGE_ID}/personas"),
        ("GET", f"/v25.0/{PAGE_ID}/personas"),
        ("DELETE", "/v25.0/p_42"),
    ]
    with pytest.raises(LimitError, match="persona name is 51 characters"):
        await personas.create("A" * 51, "https://example.com/a.png")


def test_handover_filters_tell_passed_from_taken() -> None:
    passed = event_of(messaging_item(pass_thread_control={"new_owner_app_id": "1"}))
    taken = event_of(messaging_item(take_thread_control={"previous_owner_app_id": "1"}))
    assert thread_passed(passed) and not thread_passed(taken)
    assert thread_taken(taken) and not thread_taken(passed)


async def test_calls_carry_appsecret_proof_when_the_app_requires_it(graph: Graph) -> None:
    settings = make_settings(graph_api_base="https://graph.test", appsecret_proof=True)
    async with PageApi(settings, transport=httpx.MockTransport(graph.handle)) as page_api:
        await Handoff(page_api).take_back(PSID)
    expected = hmac.new(APP_SECRET.encode(), PAGE_TOKEN.encode(), hashlib.sha256).hexdigest()
    assert graph.requests[0].url.params["appsecret_proof"] == expected
