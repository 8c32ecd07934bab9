"""The bot's HttpSendApi against the real mock app in-process: batched sends reach users."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from bot.metrics import BotMetrics
from bot.retry import ErrorClass
from bot.send_api import HttpSendApi, SendResult
from bot.testing import make_settings
from mock_meta.app import create_app
from mock_meta.settings import MockSettings
from tests.contract.graph_mock import BASE_URL, PAGE, GatedTransport
from tests.polling import eventually


@dataclass
class World:
    control: httpx.AsyncClient
    transport: GatedTransport
    api: HttpSendApi
    registry: CollectorRegistry

    async def user(self) -> str:
        r = await self.control.post("/_mock/users", json={"open_window": True})
        assert r.status_code == 201
        psid: str = r.json()["psid"]
        return psid

    async def messages_received(self, psid: str) -> list[dict[str, Any]]:
        r = await self.control.get("/_mock/journal/sends", params={"psid": psid})
        return [
            s["request"]["message"]
            for s in r.json()["items"]
            if s["status"] == 200 and s["kind"] == "message"
        ]

    async def texts_received(self, psid: str) -> list[str]:
        return [m["text"] for m in await self.messages_received(psid)]

    async def send_piled_up(
        self, psids: list[str], message: Callable[[str], dict[str, Any]] | None = None
    ) -> list[SendResult]:
        build = message or (lambda p: {"text": f"to {p}"})
        first = asyncio.create_task(self.api.send(PAGE, psids[0], build(psids[0])))
        await eventually(lambda: bool(self.transport.paths))  # out alone, held at the gate
        rest = [asyncio.create_task(self.api.send(PAGE, p, build(p))) for p in psids[1:]]
        await eventually(lambda: self.api.queued >= len(rest))
        self.transport.gate.set()
        return list(await asyncio.gather(first, *rest))


@asynccontextmanager
async def open_world(*, require_proof: bool = False, **bot: Any) -> AsyncIterator[World]:
    """The mock app in-process and the bot's client wired to it through a ``GatedTransport``."""
    hooks = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(200)))
    mock = MockSettings(require_appsecret_proof=require_proof)
    app = create_app(mock, registry=CollectorRegistry(), http_client=hooks)
    async with app.router.lifespan_context(app):
        transport = GatedTransport(app)
        registry = CollectorRegistry()
        settings = make_settings(
            graph_api_base=BASE_URL,
            send_max_in_flight=1,
            send_backoff_base_seconds=0.001,
            send_backoff_max_seconds=0.002,
            **bot,
        )
        api = HttpSendApi(settings, BotMetrics(registry), transport=transport)
        control = httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE_URL)
        try:
            yield World(control, transport, api, registry)
        finally:
            await api.aclose()
            await control.aclose()
    await hooks.aclose()


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async with open_world() as opened:
        yield opened


async def test_batched_sends_reach_every_user_as_replies(world: World) -> None:
    psids = [await world.user() for _ in range(6)]
    results = await world.send_piled_up(psids)
    assert all(r.ok and r.message_id for r in results)
    assert len({r.message_id for r in results}) == 6
    assert world.transport.paths == [f"/v25.0/{PAGE}/messages", "/v25.0/"]
    for psid in psids:
        assert await world.texts_received(psid) == [f"to {psid}"]


async def test_graph_errors_inside_a_batch_are_handled_per_call(world: World) -> None:
    first, good, blocked, flaky = [await world.user() for _ in range(4)]
    faults = [
        {"code": 551, "psid": blocked},  # this person isn't receiving messages: permanent
        {"code": 2, "http_status": 500, "count": 1, "psid": flaky},  # transient, once
    ]
    for fault in faults:
        assert (await world.control.post("/_mock/faults", json=fault)).status_code == 201
    results = await world.send_piled_up([first, good, blocked, flaky])
    by_psid = dict(zip([first, good, blocked, flaky], results, strict=True))
    assert by_psid[good].ok and by_psid[good].attempts == 1
    assert not by_psid[blocked].ok and by_psid[blocked].error_class is ErrorClass.PERMANENT
    assert by_psid[blocked].attempts == 1 and by_psid[blocked].error_code == 551
    assert by_psid[flaky].ok and by_psid[flaky].attempts == 2
    # The batch, then the transient call alone; the permanent one never again.
    assert world.transport.paths == [
        f"/v25.0/{PAGE}/messages",
        "/v25.0/",
        f"/v25.0/{PAGE}/messages",
    ]
    assert await world.texts_received(good) == [f"to {good}"]
    assert await world.texts_received(flaky) == [f"to {flaky}"]
    assert await world.texts_received(blocked) == []
    assert (
        world.registry.get_sample_value(
            "bot_send_api_requests_total", {"outcome": "permanent_error", "error_code": "551"}
        )
        == 1
    )


async def test_with_require_app_secret_on_batched_sends_carry_a_proof_graph_accepts() -> None:
    async with open_world(require_proof=True, appsecret_proof=True) as world:
        psids = [await world.user() for _ in range(4)]
        results = await world.send_piled_up(psids)
        assert [r.ok for r in results] == [True] * 4
        assert world.transport.paths == [f"/v25.0/{PAGE}/messages", "/v25.0/"]
        for psid in psids:
            assert await world.texts_received(psid) == [f"to {psid}"]


async def test_metadata_reaches_graph_unchanged_in_and_out_of_a_batch(world: World) -> None:
    psids = [await world.user() for _ in range(3)]

    def with_key(psid: str) -> dict[str, Any]:
        return {"text": "hi", "metadata": f'{{"k":"evt-{psid}:0","h":"order & co é"}}'}

    results = await world.send_piled_up(psids, with_key)
    assert all(r.ok for r in results)
    for psid in psids:
        assert await world.messages_received(psid) == [with_key(psid)]


async def test_unencodable_replies_among_a_batch_fail_alone_against_the_mock(world: World) -> None:
    psids = [await world.user() for _ in range(8)]
    bad = set(psids[2::3])

    def message(psid: str) -> dict[str, Any]:
        return {"text": f"to {psid}" + (" \ud83d" if psid in bad else "")}

    first = asyncio.create_task(world.api.send(PAGE, psids[0], message(psids[0])))
    await eventually(lambda: bool(world.transport.paths))  # out alone, held at the gate
    rest = [asyncio.create_task(world.api.send(PAGE, p, message(p))) for p in psids[1:]]
    await eventually(lambda: world.api.queued >= len(rest) - len(bad))
    world.transport.gate.set()
    results = dict(zip(psids, await asyncio.gather(first, *rest), strict=True))
    for psid, result in results.items():
        if psid in bad:
            assert result.error_class is ErrorClass.PERMANENT
            assert await world.texts_received(psid) == []
        else:
            assert result.ok and await world.texts_received(psid) == [f"to {psid}"]
