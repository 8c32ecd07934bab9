"""The mock's Graph surface, in-process: endpoints, token passing, envelopes, hostile input."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from tests.contract.graph_mock import APP, APP_TOKEN, PAGE, PSID, TOKEN, Mock, mock, text_body

__all__ = ["mock"]  # the fixture, imported for pytest


@pytest.mark.parametrize("prefix", ["/v25.0", "/v21.0", ""])
async def test_send_answers_recipient_and_message_id_on_any_version(
    mock: Mock, prefix: str
) -> None:
    r = await mock.client.post(f"{prefix}/me/messages?access_token={TOKEN}", json=text_body())
    assert r.status_code == 200
    assert r.json()["recipient_id"] == PSID and r.json()["message_id"].startswith("m_")
    assert r.headers["facebook-api-version"] == (prefix.strip("/") or "v25.0")
    assert r.headers["x-fb-trace-id"]
    assert PAGE in json.loads(r.headers["x-business-use-case-usage"])


async def test_token_is_accepted_from_form_json_body_and_bearer(mock: Mock) -> None:
    form = {
        "recipient": json.dumps({"id": PSID}),
        "message": '{"text":"hi"}',
        "access_token": TOKEN,
    }
    by_form = await mock.client.post(f"/{PAGE}/messages", data=form)
    by_body = await mock.client.post("/me/messages", json={**text_body(), "access_token": TOKEN})
    by_bearer = await mock.client.post(
        "/me/messages", json=text_body(), headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert [r.status_code for r in (by_form, by_body, by_bearer)] == [200, 200, 200]


async def test_a_bad_token_is_190_with_www_authenticate_and_never_echoed(mock: Mock) -> None:
    r = await mock.client.post("/me/messages?access_token=s3cret-wrong", json=text_body())
    error = r.json()["error"]
    assert (r.status_code, error["code"], error["type"]) == (400, 190, "OAuthException")
    assert r.headers["www-authenticate"].startswith('OAuth "Facebook Platform"')
    assert "s3cret-wrong" not in r.text and error["fbtrace_id"] == r.headers["x-fb-trace-id"]


async def test_sender_actions_answer_only_recipient_id(mock: Mock) -> None:
    body = {"recipient": {"id": PSID}, "sender_action": "typing_on"}
    r = await mock.client.post(f"/me/messages?access_token={TOKEN}", json=body)
    assert r.json() == {"recipient_id": PSID}


async def test_unknown_user_is_100_2018001(mock: Mock) -> None:
    body = {"recipient": {"id": "1"}, "message": {"text": "x"}}
    r = await mock.client.post(f"/me/messages?access_token={TOKEN}", json=body)
    assert r.status_code == 400
    assert (r.json()["error"]["code"], r.json()["error"]["error_subcode"]) == (100, 2018001)


async def test_window_closes_after_24_hours_on_the_platform_clock(mock: Mock) -> None:
    url = f"/me/messages?access_token={TOKEN}"
    assert (await mock.client.post(url, json=text_body())).status_code == 200
    mock.clock.advance(24 * 3600)
    r = await mock.client.post(url, json=text_body())
    error = r.json()["error"]
    assert (r.status_code, error["code"], error["error_subcode"]) == (400, 10, 2018278)
    assert error["message"].startswith("(#10) This message is sent outside of allowed window")


async def test_send_errors_are_counted_by_code_and_journalled_without_the_token(mock: Mock) -> None:
    await mock.client.post(f"/me/messages?access_token={TOKEN}", json=text_body())
    await mock.client.post(f"/me/messages?access_token={TOKEN}", json={"recipient": {"id": PSID}})
    assert (
        mock.registry.get_sample_value("mock_meta_send_api_requests_total", {"error_code": "none"})
        == 1
    )
    assert (
        mock.registry.get_sample_value("mock_meta_send_api_requests_total", {"error_code": "100"})
        == 1
    )
    sends = (await mock.client.get("/_mock/journal/sends")).json()["items"]
    assert [s["status"] for s in sends] == [200, 400]
    assert TOKEN not in json.dumps(sends)


async def test_a_sent_message_comes_back_as_echo_then_delivery(mock: Mock) -> None:
    body = text_body("hi there")
    body["message"]["metadata"] = "order-7"  # type: ignore[index]
    r = await mock.client.post(f"/me/messages?access_token={TOKEN}", json=body)
    mid = r.json()["message_id"]
    waited = await mock.client.get("/_mock/wait/delivery", params={"mid": mid, "timeout": 5})
    assert waited.status_code == 200
    events = [p["entry"][0]["messaging"][0] for p in mock.webhooks.posts]  # type: ignore[index]
    assert events[0]["message"] == {
        "is_echo": True,
        "app_id": int(APP),
        "metadata": "order-7",
        "mid": mid,
        "text": "hi there",
    }
    deliveries = await mock.client.get("/_mock/journal/deliveries")
    kinds = [d["event_type"] for d in deliveries.json()["items"]]
    assert kinds == ["echo", "delivery"]


async def test_receipts_follow_the_emission_switches(mock: Mock) -> None:
    await mock.client.put("/_mock/settings", json={"emit_echoes": False, "emit_reads": True})
    await mock.client.post(f"/me/messages?access_token={TOKEN}", json=text_body())
    kinds = [
        d["event_type"]
        for d in (await mock.client.get("/_mock/journal/deliveries")).json()["items"]
    ]
    assert kinds == ["delivery", "read"]


async def test_batch_answers_each_call_in_order_as_graph_does(mock: Mock) -> None:
    message_body = (
        "recipient=" + quote(json.dumps({"id": PSID})) + "&message=" + quote('{"text":"hi"}')
    )
    batch = [
        {"method": "POST", "relative_url": "me/messages", "body": message_body},
        {
            "method": "POST",
            "relative_url": "v25.0/me/messages",
            "body": "recipient=%7B%22id%22%3A%221%22%7D&message=%7B%22text%22%3A%22x%22%7D",
        },
        {"method": "GET", "relative_url": "me?fields=name"},
    ]
    r = await mock.client.post("/", data={"access_token": TOKEN, "batch": json.dumps(batch)})
    parts = r.json()
    assert r.status_code == 200 and [p["code"] for p in parts] == [200, 400, 200]
    assert json.loads(parts[0]["body"])["recipient_id"] == PSID
    assert json.loads(parts[1]["body"])["error"]["error_subcode"] == 2018001
    assert json.loads(parts[2]["body"]) == {"name": "Harness Test Page", "id": PAGE}


async def test_batch_of_more_than_50_is_refused(mock: Mock) -> None:
    batch = [{"method": "GET", "relative_url": "me"}] * 51
    r = await mock.client.post("/", json={"access_token": TOKEN, "batch": batch})
    assert r.status_code == 400 and r.json()["error"]["code"] == 100


async def test_me_and_me_accounts_and_user_profile(mock: Mock) -> None:
    auth = {"access_token": TOKEN}
    assert (await mock.client.get("/me", params=auth)).json() == {
        "name": "Harness Test Page",
        "id": PAGE,
    }
    accounts = (await mock.client.get("/v25.0/me/accounts", params=auth)).json()["data"]
    assert [(a["id"], a["access_token"]) for a in accounts] == [(PAGE, TOKEN)]
    profile = await mock.client.get(f"/{PSID}", params={**auth, "fields": "first_name,last_name"})
    assert profile.json() == {"first_name": "Peter", "last_name": "Chang", "id": PSID}
    missing = await mock.client.get("/999999", params=auth)
    assert missing.status_code == 400 and missing.json()["error"]["error_subcode"] == 33


async def test_app_subscription_runs_the_handshake_synchronously(mock: Mock) -> None:
    form = {
        "access_token": APP_TOKEN,
        "object": "page",
        "callback_url": "http://bot.local/webhook",
        "fields": "messages,messaging_postbacks",
        "verify_token": "tok",
    }
    ok = await mock.client.post(f"/{APP}/subscriptions", data=form)
    assert ok.json() == {"success": True}
    listed = (
        await mock.client.get(f"/{APP}/subscriptions", params={"access_token": APP_TOKEN})
    ).json()
    assert listed["data"][0]["callback_url"] == "http://bot.local/webhook"
    mock.webhooks.challenge_status = 404
    failed = await mock.client.post(f"/{APP}/subscriptions", data=form)
    error = failed.json()["error"]
    assert failed.status_code == 400 and error["code"] == 2200
    assert "HTTP Status Code = 404" in error["message"]


async def test_app_endpoints_need_the_app_token(mock: Mock) -> None:
    r = await mock.client.get(f"/{APP}/subscriptions", params={"access_token": TOKEN})
    assert r.status_code == 400 and r.json()["error"]["code"] == 190


async def test_a_disabled_page_is_gone_from_subscribed_apps_until_posted_again(mock: Mock) -> None:
    url = f"/{PAGE}/subscribed_apps"
    mock.runtime.state.disable(APP, PAGE, "an hour of failures")
    assert (await mock.client.get(url, params={"access_token": TOKEN})).json() == {"data": []}
    assert (
        mock.registry.get_sample_value("mock_meta_page_subscriptions", {"state": "disabled"}) == 1
    )
    r = await mock.client.post(url, data={"access_token": TOKEN, "subscribed_fields": "messages"})
    assert r.json() == {"success": True}
    data = (await mock.client.get(url, params={"access_token": TOKEN})).json()["data"]
    assert [(d["id"], d["subscribed_fields"]) for d in data] == [(APP, ["messages"])]
    assert mock.registry.get_sample_value("mock_meta_page_subscriptions", {"state": "active"}) == 1


async def test_messenger_profile_set_get_delete(mock: Mock) -> None:
    url = f"/me/messenger_profile?access_token={TOKEN}"
    body = {"get_started": {"payload": "GO"}, "greeting": [{"locale": "default", "text": "Hi"}]}
    assert (await mock.client.post(url, json=body)).json() == {"result": "success"}
    got = await mock.client.get(url + "&fields=get_started")
    assert got.json() == {"data": [{"get_started": {"payload": "GO"}}]}
    await mock.client.request("DELETE", url, json={"fields": ["get_started", "greeting"]})
    assert (await mock.client.get(url)).json() == {"data": []}
    bad = await mock.client.post(url, json={"colour": "red"})
    assert bad.status_code == 400


@pytest.mark.parametrize(
    ("method", "path", "content", "headers"),
    [
        (
            "POST",
            f"/me/messages?access_token={TOKEN}",
            b"{not json",
            {"content-type": "application/json"},
        ),
        (
            "POST",
            f"/me/messages?access_token={TOKEN}",
            b"[1,2,3]",
            {"content-type": "application/json"},
        ),
        (
            "POST",
            f"/me/messages?access_token={TOKEN}",
            b"\xff\xfe\x00",
            {"content-type": "application/json"},
        ),
        (
            "POST",
            f"/me/messages?access_token={TOKEN}",
            b"recipient=%ZZ&&==",
            {"content-type": "application/x-www-form-urlencoded"},
        ),
        (
            "POST",
            f"/me/messages?access_token={TOKEN}",
            b'{"recipient":{"id":{"$gt":""}},"message":"x"}',
            {},
        ),
        (
            "POST",
            f"/me/messages?access_token={TOKEN}",
            b'{"recipient":{"id":"' + PSID.encode() + b'"},"message":{"text":["a"]}}',
            {},
        ),
        ("POST", f"/me/messages?access_token={TOKEN}", b"x" * (1024 * 1024 + 1), {}),
        ("POST", "/", b'{"batch":"not a list"}', {"content-type": "application/json"}),
        ("GET", "/a/b/c/d", b"", {}),
        ("DELETE", "/me", b"", {}),
        ("PUT", f"/me/messages?access_token={TOKEN}", b"{}", {}),
    ],
)
async def test_hostile_or_malformed_requests_get_a_graph_4xx_never_500(
    mock: Mock, method: str, path: str, content: bytes, headers: dict[str, str]
) -> None:
    r = await mock.client.request(method, path, content=content, headers=headers)
    assert 400 <= r.status_code < 500
    assert "code" in r.json()["error"]


async def test_malformed_batch_items_fail_alone_inside_a_200(mock: Mock) -> None:
    batch = [{"method": "DANCE", "relative_url": "me"}, 5, {"method": "GET", "relative_url": "me"}]
    r = await mock.client.post("/", json={"access_token": TOKEN, "batch": batch})
    assert r.status_code == 200 and [p["code"] for p in r.json()] == [400, 400, 200]


async def test_mock_routes_are_not_swallowed_by_the_graph_catch_all(mock: Mock) -> None:
    assert (await mock.client.get("/_mock/health")).json()["ok"] is True
    metrics = await mock.client.get("/metrics")
    assert "mock_meta_send_api_requests_total" in metrics.text
    assert (await mock.client.get("/openapi.json")).json()["paths"]["/_mock/reset"]
