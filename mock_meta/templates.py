"""Pure validation of Send API templates and buttons (reference §5.4), Graph's ``(#100)``.

>>> from mock_meta.graph_errors import GraphError
>>> try:
...     check_template({"template_type": "button", "text": "Pick", "buttons": []})
... except GraphError as err:
...     print(err.code, err.message[-24:])
100 must hold 1 to 3 buttons

Template types the reference lists without limits (``customer_information``, ``instant_form``,
``notification_messages``) pass unchecked; an unknown ``template_type`` is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

from mock_meta.graph_errors import graph_error

_P = "param message[attachment][payload]"
MAX_BUTTONS = 3
MAX_BUTTON_TITLE = 20
MAX_PAYLOAD_CHARS = 1000
BUTTON_TYPES = (
    "web_url",
    "postback",
    "phone_number",
    "account_link",
    "account_unlink",
    "game_play",
)
WEBVIEW_RATIOS = ("compact", "tall", "full")


def _fail(message: str) -> NoReturn:
    raise graph_error(100, None, message)


def _text(value: Any, where: str, limit: int, *, required: bool = True) -> None:
    if value is None:
        if required:
            _fail(f"{where} is required")
        return
    if not isinstance(value, str) or len(value) > limit:
        _fail(f"{where} must be a string of at most {limit} characters")


def _items(value: Any, where: str, low: int, high: int, noun: str = "elements") -> list[Any]:
    if not isinstance(value, list) or not low <= len(value) <= high:
        _fail(f"{where} must hold {low} to {high} {noun}")
    return list(value)


def check_buttons(buttons: Any, where: str, *, low: int = 0) -> None:
    """0..3 buttons (1..3 with ``low=1``), each of a known type with its required fields."""
    if buttons is None and low == 0:
        return
    for i, button in enumerate(_items(buttons, where, low, MAX_BUTTONS, "buttons")):
        at = f"{where}[{i}]"
        if not isinstance(button, dict) or button.get("type") not in BUTTON_TYPES:
            _fail(f"{at}[type] must be one of {{{', '.join(BUTTON_TYPES)}}}")
        kind = button["type"]
        titled = kind in ("web_url", "postback", "phone_number", "game_play")
        _text(button.get("title"), f"{at}[title]", MAX_BUTTON_TITLE, required=titled)
        if kind in ("web_url", "account_link"):
            _text(button.get("url"), f"{at}[url]", 2000)
        if kind in ("postback", "phone_number"):
            _text(button.get("payload"), f"{at}[payload]", MAX_PAYLOAD_CHARS)
        ratio = button.get("webview_height_ratio")
        if ratio is not None and ratio not in WEBVIEW_RATIOS:
            _fail(f"{at}[webview_height_ratio] must be one of {{{', '.join(WEBVIEW_RATIOS)}}}")


def _generic(payload: dict[str, Any]) -> None:
    for i, element in enumerate(_items(payload.get("elements"), f"{_P}[elements]", 1, 10)):
        at = f"{_P}[elements][{i}]"
        if not isinstance(element, dict):
            _fail(f"{at} must be an object")
        _text(element.get("title"), f"{at}[title]", 80)
        _text(element.get("subtitle"), f"{at}[subtitle]", 80, required=False)
        check_buttons(element.get("buttons"), f"{at}[buttons]")


def _button(payload: dict[str, Any]) -> None:
    _text(payload.get("text"), f"{_P}[text]", 640)
    check_buttons(payload.get("buttons"), f"{_P}[buttons]", low=1)


def _media(payload: dict[str, Any]) -> None:
    [element] = _items(payload.get("elements"), f"{_P}[elements]", 1, 1, "element")
    at = f"{_P}[elements][0]"
    if not isinstance(element, dict) or element.get("media_type") not in ("image", "video"):
        _fail(f"{at}[media_type] must be one of {{image, video}}")
    if (element.get("attachment_id") is None) == (element.get("url") is None):
        _fail(f"{at} needs exactly one of attachment_id or url")
    check_buttons(element.get("buttons"), f"{at}[buttons]")


def _receipt(payload: dict[str, Any]) -> None:
    for name in ("recipient_name", "order_number", "currency", "payment_method"):
        _text(payload.get(name), f"{_P}[{name}]", 1000)
    summary = payload.get("summary")
    if not isinstance(summary, dict) or summary.get("total_cost") is None:
        _fail(f"{_P}[summary][total_cost] is required")
    if payload.get("elements") is not None:
        _items(payload["elements"], f"{_P}[elements]", 0, 100)


def _product(payload: dict[str, Any]) -> None:
    for i, element in enumerate(_items(payload.get("elements"), f"{_P}[elements]", 1, 10)):
        if not isinstance(element, dict) or element.get("id") is None:
            _fail(f"{_P}[elements][{i}][id] is required")


def _coupon(payload: dict[str, Any]) -> None:
    _text(payload.get("title"), f"{_P}[title]", 80)
    if payload.get("coupon_code") is None and payload.get("coupon_url") is None:
        _fail(f"{_P} needs coupon_code or coupon_url")


def _customer_feedback(payload: dict[str, Any]) -> None:
    _text(payload.get("title"), f"{_P}[title]", 65)
    _text(payload.get("subtitle"), f"{_P}[subtitle]", 80, required=False)
    _text(payload.get("button_title"), f"{_P}[button_title]", 20)


def _image_grid(payload: dict[str, Any]) -> None:
    [element] = _items(payload.get("elements"), f"{_P}[elements]", 1, 1, "element")
    at = f"{_P}[elements][0]"
    if not isinstance(element, dict):
        _fail(f"{at} must be an object")
    _text(element.get("title"), f"{at}[title]", 45, required=False)
    images = _items(element.get("images"), f"{at}[images]", 2, 6, "images")
    if sum(1 for image in images if isinstance(image, dict) and image.get("is_hero_image")) > 1:
        _fail(f"{at}[images] may mark at most one is_hero_image")
    check_buttons(element.get("buttons"), f"{at}[buttons]")


def _one_time_notif_req(payload: dict[str, Any]) -> None:
    _text(payload.get("title"), f"{_P}[title]", 65)
    _text(payload.get("payload"), f"{_P}[payload]", MAX_PAYLOAD_CHARS)


def _unchecked(payload: dict[str, Any]) -> None:
    return None


_CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "generic": _generic,
    "button": _button,
    "media": _media,
    "receipt": _receipt,
    "product": _product,
    "coupon": _coupon,
    "customer_feedback": _customer_feedback,
    "image_grid": _image_grid,
    "one_time_notif_req": _one_time_notif_req,
    "customer_information": _unchecked,
    "instant_form": _unchecked,
    "notification_messages": _unchecked,
}


def check_template(payload: dict[str, Any]) -> None:
    """Raise Graph's ``(#100)`` for the first limit ``payload`` breaks."""
    check = _CHECKS.get(str(payload.get("template_type")))
    if check is None:
        _fail(f"{_P}[template_type] must be one of {{{', '.join(_CHECKS)}}}")
    check(payload)
