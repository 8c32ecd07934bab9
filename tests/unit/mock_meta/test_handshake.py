"""The verification GET: success, and every failure explained for people and for Graph."""

from __future__ import annotations

import random
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from mock_meta.handshake import new_challenge, verify_callback


def app_answering(handler: Any) -> Starlette:
    return Starlette(routes=[Route("/webhook", handler, methods=["GET"])])


async def test_a_bot_echoing_the_challenge_passes(receiver: Any) -> None:
    result = await verify_callback(receiver.url, "tok", challenge="1158201444")
    assert result.ok and result.failure is None
    assert (result.status, result.body) == (200, "1158201444")
    assert result.graph_error_message() == ""


async def test_the_get_carries_metas_query_parameters(serve: Any) -> None:
    seen: dict[str, str] = {}

    async def record(request: Request) -> Response:
        seen.update(request.query_params)
        return PlainTextResponse(request.query_params["hub.challenge"])

    base = await serve(app_answering(record))
    result = await verify_callback(f"{base}/webhook", "my token&x=1", rng=random.Random(1))
    assert result.ok
    assert seen["hub.mode"] == "subscribe"
    assert seen["hub.verify_token"] == "my token&x=1"
    assert seen["hub.challenge"].isdigit() and 9 <= len(seen["hub.challenge"]) <= 10


def test_challenges_are_9_or_10_digit_integers() -> None:
    rng = random.Random(4)
    for _ in range(200):
        challenge = new_challenge(rng)
        assert challenge.isdigit() and 9 <= len(challenge) <= 10


async def test_a_wrong_verify_token_is_explained_and_mapped_to_graph_2200(receiver: Any) -> None:
    result = await verify_callback(receiver.url, "not-the-token", challenge="123456789")
    assert not result.ok and result.failure == "wrong_status" and result.status == 403
    assert "403 Forbidden" in result.reason and "verify token" in result.reason
    assert result.graph_error_message() == (
        "(#2200) Callback verification failed with the following errors: "
        "HTTP Status Code = 403; HTTP Message = Forbidden"
    )


async def test_a_missing_route_gives_metas_404_message(receiver: Any) -> None:
    result = await verify_callback(receiver.url.replace("/webhook", "/nope"), "tok")
    assert result.graph_error_message() == (
        "(#2200) Callback verification failed with the following errors: "
        "HTTP Status Code = 404; HTTP Message = Not Found"
    )


async def test_a_body_that_is_not_the_challenge_says_what_was_expected(serve: Any) -> None:
    async def json_answer(request: Request) -> Response:
        return PlainTextResponse('{"challenge": "x"}')

    base = await serve(app_answering(json_answer))
    result = await verify_callback(f"{base}/webhook", "tok", challenge="987654321")
    assert not result.ok and result.failure == "body_mismatch"
    assert "987654321" in result.reason and '{"challenge": "x"}' in result.reason
    assert 'expected value="987654321"' in result.graph_error_message()


async def test_whitespace_around_the_challenge_passes_unless_strict(serve: Any) -> None:
    async def padded(request: Request) -> Response:
        return PlainTextResponse(request.query_params["hub.challenge"] + "\n")

    url = f"{await serve(app_answering(padded))}/webhook"
    assert (await verify_callback(url, "tok")).ok
    strict = await verify_callback(url, "tok", strict=True)
    assert not strict.ok and strict.failure == "body_mismatch"


async def test_nothing_listening_is_reported_as_connection_refused(closed_url: str) -> None:
    result = await verify_callback(closed_url, "tok")
    assert not result.ok and result.status is None
    assert result.failure in ("connection_refused", "connection_error")
    assert closed_url in result.reason
    assert "HTTP Status Code = 0" in result.graph_error_message()


async def test_a_hanging_callback_times_out(receiver: Any, serve: Any) -> None:
    async def hang(request: Request) -> Response:
        await receiver._release.wait()  # released when the receiver fixture tears down
        return PlainTextResponse("late")

    url = f"{await serve(app_answering(hang))}/webhook"
    result = await verify_callback(url, "tok", timeout=0.2)
    assert not result.ok and result.failure == "timeout"
    assert "0.2 s" in result.reason
    assert "Operation timed out after 200 milliseconds" in result.graph_error_message()
