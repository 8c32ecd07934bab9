"""The control API documents itself at ``/docs``: one schema per action kind, response
models on every route, and a description wherever a summary is not enough."""

from __future__ import annotations

from typing import Any, get_args

import httpx
import pytest
from prometheus_client import CollectorRegistry

from mock_meta.app import create_app
from mock_meta.control_models import ActionType, parse_action
from mock_meta.settings import MockSettings

ACTIONS = "/_mock/users/{psid}/actions"
# Long-polls and the console's event stream (text/event-stream, no JSON body to model).
LONG_POLLS = ("/_mock/wait/", "/_mock/journal/summary", "/_mock/console/stream")


@pytest.fixture
async def openapi() -> dict[str, Any]:
    app = create_app(MockSettings(), registry=CollectorRegistry())
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://mock") as client:
        r = await client.get("/openapi.json")
    assert r.status_code == 200
    spec: dict[str, Any] = r.json()
    return spec


def test_every_action_type_has_its_own_model() -> None:
    for kind in get_args(ActionType):
        required = {"text": "x", "standby_text": "x", "message_edit": "x"}
        fields: dict[str, Any] = {"type": kind}
        if kind in required:
            fields["text"] = required[kind]
        if kind == "message_edit":
            fields["target_mid"] = "m_1"
        if kind in ("quick_reply", "postback"):
            fields["payload"] = "P"
        action = parse_action(fields)
        assert action.type == kind
        assert type(action).__doc__, f"{type(action).__name__} has no description"


async def test_the_action_body_is_a_discriminated_union_of_every_kind(
    openapi: dict[str, Any],
) -> None:
    body = openapi["paths"][ACTIONS]["post"]["requestBody"]["content"]["application/json"]
    schema = body["schema"]
    assert set(schema["discriminator"]["mapping"]) == set(get_args(ActionType))
    text = openapi["components"]["schemas"]["TextAction"]
    assert text["required"] == ["type", "text"] and text["description"]
    assert "additionalProperties" in text  # unknown keys are refused


async def test_every_control_route_has_a_summary_and_a_documented_answer(
    openapi: dict[str, Any],
) -> None:
    for path, methods in openapi["paths"].items():
        if not path.startswith("/_mock/"):
            continue
        for method, operation in methods.items():
            where = f"{method.upper()} {path}"
            assert operation.get("summary"), where
            answers = operation["responses"]
            ok = answers.get("200") or answers.get("201") or answers.get("202")
            assert ok, where
            if path.startswith(LONG_POLLS):
                continue  # the wait routes answer several shapes (owned with the journal)
            schema = ok["content"]["application/json"]["schema"]
            assert schema.get("$ref"), f"{where} has no response model"
