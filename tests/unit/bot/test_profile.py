"""Profile files: what they turn into, and the errors that name what is wrong."""

from __future__ import annotations

import pytest

from bot.limits import LimitError
from bot.profile import ProfileError, describe, load_profile_text, plan, profile_properties


def properties(text: str) -> dict[str, object]:
    return profile_properties(load_profile_text(text))


def test_single_values_become_the_default_locale() -> None:
    assert properties("greeting: Hi\nice_breakers: [{question: 'Q?', payload: P}]") == {
        "greeting": [{"locale": "default", "text": "Hi"}],
        "ice_breakers": [
            {"locale": "default", "call_to_actions": [{"question": "Q?", "payload": "P"}]}
        ],
    }


def test_menus_per_locale_with_the_composer_disabled() -> None:
    text = """
get_started: GO
persistent_menu:
  default: {items: [{title: Help, payload: HELP}], composer_input_disabled: true}
  fr_FR: [{title: Aide, payload: HELP}]
"""
    menus = properties(text)["persistent_menu"]
    assert menus == [
        {
            "locale": "default",
            "composer_input_disabled": True,
            "call_to_actions": [{"type": "postback", "title": "Help", "payload": "HELP"}],
        },
        {
            "locale": "fr_FR",
            "composer_input_disabled": False,
            "call_to_actions": [{"type": "postback", "title": "Aide", "payload": "HELP"}],
        },
    ]


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("greeting: [unclosed", "not valid YAML"),
        ("greting: Hi", "greting: Extra inputs are not permitted"),
        ("get_started: GO\npersistent_menu: [{title: X}]", "exactly one of payload or url"),
        ("get_started: GO\npersistent_menu: [{title: " + "t" * 31 + ", payload: P}]", "title"),
    ],
)
def test_bad_files_are_refused_naming_the_place(text: str, named: str) -> None:
    with pytest.raises(ProfileError, match=named):
        load_profile_text(text)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("greeting: " + "g" * 161, "greeting is 161 characters; the limit is 160"),
        ("ice_breakers: " + str([{"question": "q", "payload": "p"}] * 5), "5 ice breakers"),
        ("persistent_menu: [{title: Help, payload: HELP}]", "needs get_started"),
    ],
)
def test_platform_limits_are_checked_before_any_call(text: str, named: str) -> None:
    with pytest.raises(LimitError, match=named):
        properties(text)


def test_plan_sets_only_what_differs_and_describes_it() -> None:
    current = {"get_started": {"payload": "GO"}, "greeting": [{"locale": "default", "text": "A"}]}
    desired = properties("get_started: GO\ngreeting: B")
    changes = plan(current, desired)
    assert list(changes.set) == ["greeting"] and changes.unchanged == ["get_started"]
    text = describe(changes)
    assert text.startswith("~ greeting\n") and "= get_started" in text
    assert describe(plan(desired, desired)) == "profile up to date: nothing to change\n"
