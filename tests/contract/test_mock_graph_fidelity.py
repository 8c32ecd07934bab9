"""Fidelity gaps real SDKs found (issue 8 point 4), each pinned to the reference."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from bot.metrics import BotMetrics
from bot.send_api import HttpSendApi
from bot.testing import make_settings
from mock_meta.app import create_app
from mock_meta.runtime import MockRuntime
from mock_meta.send_validation import appsecret_proof
from mock_meta.settings import MockSettings
from tests.contract.graph_mock import (
    APP,
    BASE_URL,
    PAGE,
    PSID,
    TOKEN,
    GatedTransport,
    Mock,
    mock,
    text_body,
)
from tests.polling import eventually

__all__ = ["mock"]  # the fixture, imported for pytest

SEND = f"/v25.0/me/messages?access_token={TOKEN}"
PROOF = appsecret_proof("test_app_secret", TOKEN)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def multipart_image(reusable: bool = False) -> dict[str, str]:
    payload = {"is_reusable": True} if reusable else {}
    return {
        "recipient": json.dumps({"id": PSID}),
        "messaging_type": "RESPONSE",
        "message": json.dumps({"attachment": {"type": "image", "payload": payload}}),
    }


async def echo_of(mock: Mock, message_id: str) -> dict[str, Any]:
    """The echo webhook of a sent message, once the mock delivered it."""
    assert await mock.runtime.journal.wait_delivery(message_id, 5) is not None
    [echo] = [
        event["message"]
        for post in mock.webhooks.posts
        for entry in post["entry"]  # type: ignore[attr-defined]
        for event in entry["messaging"]
        if event.get("message", {}).get("mid") == message_id
    ]
    return echo


# --- multipart/form-data (reference §5.1) -------------------------------------------------


async def test_a_multipart_file_send_is_accepted_and_its_echo_carries_the_attachment(
    mock: Mock,
) -> None:
    r = await mock.client.post(
        SEND, data=multipart_image(), files={"filedata": ("a.png", PNG, "image/png")}
    )
    assert r.status_code == 200, r.text
    echo = await echo_of(mock, r.json()["message_id"])
    [attachment] = echo["attachments"]
    assert attachment["type"] == "image" and attachment["payload"]["url"].endswith("/a.png")
    sent = mock.runtime.journal.sends()[-1]
    assert sent.to_dict()["request"]["filedata"]["size"] == len(PNG)


async def test_a_multipart_attachment_without_file_or_url_is_refused(mock: Mock) -> None:
    r = await mock.client.post(SEND, data=multipart_image(), files={"other": ("x", b"1", "a/b")})
    assert r.status_code == 400 and r.json()["error"]["code"] == 100


# --- attachment reuse (reference §5.4, §9.5) ----------------------------------------------


async def test_is_reusable_returns_an_attachment_id_that_a_later_send_reuses(mock: Mock) -> None:
    r = await mock.client.post(
        SEND, data=multipart_image(reusable=True), files={"filedata": ("b.png", PNG, "image/png")}
    )
    attachment_id = r.json()["attachment_id"]
    reuse = {"attachment": {"type": "image", "payload": {"attachment_id": attachment_id}}}
    again = await mock.client.post(SEND, json={**text_body(), "message": reuse})
    assert again.status_code == 200, again.text
    echo = await echo_of(mock, again.json()["message_id"])
    assert echo["attachments"][0]["payload"]["url"].endswith("/b.png")


async def test_the_upload_api_saves_an_attachment_for_its_page_only(mock: Mock) -> None:
    message = {"attachment": {"type": "image", "payload": {"url": "https://x.io/a.jpg"}}}
    r = await mock.client.post(
        f"/v25.0/me/message_attachments?access_token={TOKEN}", json={"message": message}
    )
    assert r.status_code == 200, r.text
    attachment_id = r.json()["attachment_id"]
    reuse = {"attachment": {"type": "image", "payload": {"attachment_id": attachment_id}}}
    ok = await mock.client.post(SEND, json={**text_body(), "message": reuse})
    assert ok.status_code == 200
    unknown = {"attachment": {"type": "image", "payload": {"attachment_id": "999"}}}
    bad = await mock.client.post(SEND, json={**text_body(), "message": unknown})
    assert (bad.json()["error"]["code"], bad.json()["error"]["error_subcode"]) == (100, 2018074)


async def test_reused_ids_expire_after_90_days(mock: Mock) -> None:
    message = {"attachment": {"type": "file", "payload": {"url": "https://x.io/a.pdf"}}}
    r = await mock.client.post(
        f"/v25.0/me/message_attachments?access_token={TOKEN}", json={"message": message}
    )
    mock.clock.advance(91 * 24 * 3600)
    mock.runtime.state.record_inbound(PAGE, PSID, mock.clock.now())
    reuse = {
        "attachment": {"type": "file", "payload": {"attachment_id": r.json()["attachment_id"]}}
    }
    bad = await mock.client.post(SEND, json={**text_body(), "message": reuse})
    assert bad.json()["error"]["error_subcode"] == 2018074


async def test_echoes_of_multi_image_sends_carry_every_image(mock: Mock) -> None:
    images = [{"type": "image", "payload": {"url": f"https://x.io/{n}.jpg"}} for n in range(3)]
    r = await mock.client.post(SEND, json={**text_body(), "message": {"attachments": images}})
    assert r.status_code == 200, r.text
    echo = await echo_of(mock, r.json()["message_id"])
    urls = [a["payload"]["url"] for a in echo["attachments"]]
    assert urls == [f"https://x.io/{n}.jpg" for n in range(3)]


async def test_template_echoes_keep_the_payload_and_the_metadata(mock: Mock) -> None:
    payload = {"template_type": "button", "text": "Pick", "buttons": [_postback("A")]}
    message = {"attachment": {"type": "template", "payload": payload}, "metadata": "k=1"}
    r = await mock.client.post(SEND, json={**text_body(), "message": message})
    echo = await echo_of(mock, r.json()["message_id"])
    assert echo["metadata"] == "k=1"
    assert echo["attachments"] == [{"type": "template", "payload": payload}]


def _postback(title: str) -> dict[str, str]:
    return {"type": "postback", "title": title, "payload": title}


# --- batch with a top-level appsecret_proof (reference §5.1, §8) ---------------------------


async def test_a_batch_with_a_top_level_proof_passes_when_the_app_secret_is_required(
    mock: Mock,
) -> None:
    mock.runtime.policy.require_appsecret_proof = True
    mock.runtime.policy.refresh()
    item = {
        "method": "POST",
        "relative_url": "me/messages",
        "body": "recipient=%7B%22id%22%3A%22" + PSID + "%22%7D&message=%7B%22text%22%3A%22hi%22%7D"
        "&messaging_type=RESPONSE",
    }
    form = {"access_token": TOKEN, "appsecret_proof": PROOF, "batch": json.dumps([item, item])}
    r = await mock.client.post("/v25.0/", data=form)
    assert [part["code"] for part in r.json()] == [200, 200]
    # Without the proof every item still fails, as Meta answers.
    del form["appsecret_proof"]
    r = await mock.client.post("/v25.0/", data=form)
    assert [part["code"] for part in r.json()] == [400, 400]


# --- Graph versions (reference §10) -------------------------------------------------------


async def test_an_expired_version_is_served_by_the_oldest_available(mock: Mock) -> None:
    # The fixture's clock is 2027-01-15: v20.0 ended on 2026-09-24, v21.0 is the oldest.
    r = await mock.client.post(f"/v20.0/me/messages?access_token={TOKEN}", json=text_body())
    assert r.status_code == 200
    assert r.headers["facebook-api-version"] == "v21.0"
    assert mock.runtime.journal.sends()[-1].call["version"] == "v21.0"  # type: ignore[index]


async def test_expired_versions_can_be_refused_with_graph_error_12(mock: Mock) -> None:
    mock.runtime.policy.expired_graph_versions = "reject"
    r = await mock.client.post(f"/v19.0/me/messages?access_token={TOKEN}", json=text_body())
    assert r.status_code == 400 and r.json()["error"]["code"] == 12
    assert "v21.0" in r.json()["error"]["message"]
    live = await mock.client.post(f"/v21.0/me/messages?access_token={TOKEN}", json=text_body())
    assert live.status_code == 200


# --- the journal records how a call was made ----------------------------------------------


@pytest.mark.parametrize(
    ("how", "source"),
    [("query", "query"), ("bearer", "header"), ("body", "body")],
)
async def test_the_journal_records_path_version_token_source_and_trace_headers(
    mock: Mock, how: str, source: str
) -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    headers = {"traceparent": traceparent}
    body = text_body()
    url = "/me/messages"
    if how == "query":
        url += f"?access_token={TOKEN}"
    elif how == "bearer":
        headers["authorization"] = f"Bearer {TOKEN}"
    else:
        body = {**body, "access_token": TOKEN}
    r = await mock.client.post(url, json=body, headers=headers)
    assert r.status_code == 200
    record = mock.runtime.journal.sends()[-1]
    assert record.call is not None
    assert record.call["path"] == "/me/messages"
    assert (record.call["version"], record.call["requested_version"]) == ("v25.0", None)
    assert record.call["token_source"] == source
    assert record.call["headers"]["traceparent"] == traceparent
    assert TOKEN not in json.dumps(record.to_dict())


async def test_batch_items_record_the_inherited_token_and_their_own_path(mock: Mock) -> None:
    item = {"method": "POST", "relative_url": "v25.0/me/messages", "body": ""}
    item["body"] = f"recipient=%7B%22id%22%3A%22{PSID}%22%7D&message=%7B%22text%22%3A%22x%22%7D"
    r = await mock.client.post("/v25.0/", data={"access_token": TOKEN, "batch": json.dumps([item])})
    assert r.json()[0]["code"] == 200
    call = mock.runtime.journal.sends()[-1].call
    assert call is not None
    assert (call["path"], call["token_source"]) == ("v25.0/me/messages", "batch")
    assert APP not in json.dumps(call)


# --- personas (reference §9.6) ------------------------------------------------------------


async def test_personas_are_created_listed_used_in_sends_and_soft_deleted(mock: Mock) -> None:
    personas = f"/v25.0/{PAGE}/personas?access_token={TOKEN}"
    created = await mock.client.post(
        personas, json={"name": "Adam", "profile_picture_url": "https://x.io/adam.png"}
    )
    persona_id = created.json()["id"]
    listed = await mock.client.get(personas)
    assert [p["name"] for p in listed.json()["data"]] == ["Adam"]
    node = await mock.client.get(f"/v25.0/{persona_id}?access_token={TOKEN}")
    assert node.json() == {
        "name": "Adam",
        "profile_picture_url": "https://x.io/adam.png",
        "id": persona_id,
    }
    as_adam = await mock.client.post(SEND, json={**text_body(), "persona_id": persona_id})
    assert as_adam.status_code == 200, as_adam.text
    typing = {"recipient": {"id": PSID}, "sender_action": "typing_on", "persona_id": persona_id}
    assert (await mock.client.post(SEND, json=typing)).status_code == 200

    deleted = await mock.client.delete(f"/v25.0/{persona_id}?access_token={TOKEN}")
    assert deleted.json() == {"success": True}
    gone = await mock.client.post(SEND, json={**text_body(), "persona_id": persona_id})
    assert gone.status_code == 400 and gone.json()["error"]["code"] == 100
    assert (await mock.client.get(f"/v25.0/{persona_id}?access_token={TOKEN}")).status_code == 400
    assert (await mock.client.get(personas)).json()["data"] == []


@pytest.mark.parametrize(
    "body", [{"name": "", "profile_picture_url": "https://x.io/a.png"}, {"name": "A" * 51}]
)
async def test_a_persona_needs_a_short_name_and_a_picture(mock: Mock, body: dict[str, str]) -> None:
    r = await mock.client.post(f"/v25.0/me/personas?access_token={TOKEN}", json=body)
    assert r.status_code == 400 and r.json()["error"]["code"] == 100


# --- templates (reference §5.4) -----------------------------------------------------------


@pytest.mark.parametrize(("elements", "status"), [(10, 200), (11, 400)])
async def test_a_generic_template_holds_at_most_10_elements(
    mock: Mock, elements: int, status: int
) -> None:
    cards = [{"title": f"Card {n}"} for n in range(elements)]
    payload = {"template_type": "generic", "elements": cards}
    message = {"attachment": {"type": "template", "payload": payload}}
    r = await mock.client.post(SEND, json={**text_body(), "message": message})
    assert r.status_code == status, r.text
    if status == 400:
        assert r.json()["error"]["code"] == 100 and "elements" in r.json()["error"]["message"]


async def test_our_bots_batches_with_a_proof_reach_users_when_the_app_secret_is_required() -> None:
    """The shape the bot sends (a batch with top-level token and appsecret_proof) passes."""
    hooks = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(200)))
    settings = MockSettings(require_appsecret_proof=True)
    app = create_app(settings, registry=CollectorRegistry(), http_client=hooks)
    async with app.router.lifespan_context(app):
        runtime: MockRuntime = app.state.runtime
        psids = [runtime.state.create_user(page_id=PAGE).psid for _ in range(4)]
        for psid in psids:
            runtime.state.record_inbound(PAGE, psid, runtime.clock.now())
        transport = GatedTransport(app)
        bot_settings = make_settings(
            graph_api_base=BASE_URL,
            appsecret_proof=True,
            send_max_in_flight=1,
        )
        api = HttpSendApi(bot_settings, BotMetrics(CollectorRegistry()), transport=transport)
        try:
            first = asyncio.create_task(api.send(PAGE, psids[0], {"text": "hi"}))
            await eventually(lambda: bool(transport.paths))  # out alone, held at the gate
            rest = [asyncio.create_task(api.send(PAGE, p, {"text": "hi"})) for p in psids[1:]]
            await eventually(lambda: api.queued >= len(rest))
            transport.gate.set()
            results = await asyncio.gather(first, *rest)
        finally:
            await api.aclose()
    await hooks.aclose()
    assert transport.paths == [f"/v25.0/{PAGE}/messages", "/v25.0/"]
    assert [r.ok for r in results] == [True] * 4, results
