"""Template and button limits of the Send API (reference §5.4): Graph's (#100) when broken."""

from __future__ import annotations

from typing import Any

import pytest

from mock_meta.graph_errors import GraphError
from mock_meta.templates import check_template


def postback(title: str = "Pick", payload: str = "P") -> dict[str, str]:
    return {"type": "postback", "title": title, "payload": payload}


def element(title: str = "Shoe", **extra: Any) -> dict[str, Any]:
    return {"title": title, **extra}


def generic(elements: list[dict[str, Any]]) -> dict[str, Any]:
    return {"template_type": "generic", "elements": elements}


def media(**element_fields: Any) -> dict[str, Any]:
    return {"template_type": "media", "elements": [{"media_type": "image", **element_fields}]}


def grid(images: int, heroes: int = 0) -> dict[str, Any]:
    pics = [{"url": f"https://x.io/{n}.jpg", "is_hero_image": n < heroes} for n in range(images)]
    return {"template_type": "image_grid", "elements": [{"title": "Look", "images": pics}]}


VALID = [
    generic([element() for _ in range(10)]),
    generic([element(subtitle="s" * 80, buttons=[postback()] * 3)]),
    {"template_type": "button", "text": "t" * 640, "buttons": [postback()]},
    {
        "template_type": "button",
        "text": "Visit",
        "buttons": [{"type": "web_url", "url": "https://x.io", "title": "Go"}],
    },
    media(attachment_id="1857777774821032"),
    {
        "template_type": "receipt",
        "recipient_name": "A",
        "order_number": "1",
        "currency": "USD",
        "payment_method": "Visa",
        "summary": {"total_cost": 10},
    },
    {"template_type": "product", "elements": [{"id": "123"}]},
    {"template_type": "coupon", "title": "10% off", "coupon_code": "TEN"},
    grid(2, heroes=1),
    {"template_type": "customer_information", "countries": ["US"]},
]

INVALID = [
    (generic([element() for _ in range(11)]), "elements"),
    (generic([]), "elements"),
    (generic([element(title="t" * 81)]), "title"),
    (generic([element(buttons=[postback()] * 4)]), "buttons"),
    (generic([element(buttons=[postback(title="t" * 21)])]), "title"),
    (generic([element(buttons=[postback(payload="p" * 1001)])]), "payload"),
    (generic([element(buttons=[{"type": "nope", "title": "x"}])]), "type"),
    ({"template_type": "button", "text": "t" * 641, "buttons": [postback()]}, "text"),
    ({"template_type": "button", "text": "Pick", "buttons": []}, "buttons"),
    ({"template_type": "button", "text": "Pick", "buttons": [postback()] * 4}, "buttons"),
    ({"template_type": "button", "text": "Go", "buttons": [{"type": "web_url"}]}, "title"),
    (media(), "attachment_id"),
    (media(attachment_id="1", url="https://x.io"), "attachment_id"),
    ({"template_type": "receipt", "recipient_name": "A"}, "order_number"),
    ({"template_type": "product", "elements": [{}]}, "id"),
    ({"template_type": "coupon", "title": "10% off"}, "coupon_code"),
    (grid(1), "images"),
    (grid(7), "images"),
    (grid(3, heroes=2), "is_hero_image"),
    ({"template_type": "carousel"}, "template_type"),
]


@pytest.mark.parametrize("payload", VALID)
def test_templates_within_the_limits_pass(payload: dict[str, Any]) -> None:
    check_template(payload)


@pytest.mark.parametrize(("payload", "named"), INVALID)
def test_a_broken_limit_is_graph_100_naming_the_field(payload: dict[str, Any], named: str) -> None:
    with pytest.raises(GraphError) as caught:
        check_template(payload)
    assert caught.value.code == 100 and caught.value.http_status == 400
    assert named in caught.value.message
