"""Choice settings refuse unknown values with a message that names the variable."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bot.cli import describe_settings_error
from bot.settings import BotSettings

SECRETS = {
    "MESSENGER_VERIFY_TOKEN": "v",
    "MESSENGER_APP_SECRET": "s",
    "MESSENGER_PAGE_ACCESS_TOKEN": "t",
}


@pytest.mark.parametrize(
    ("variable", "value"),
    [("INBOX_BACKEND", "postgres"), ("INBOX_SYNCHRONOUS", "OFF"), ("LOG_LEVEL", "LOUD")],
)
def test_an_unknown_choice_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as caught:
        BotSettings(**SECRETS)
    message = describe_settings_error(caught.value)
    assert message.startswith(f"invalid setting {variable}:")
    assert value not in message  # the message names the variable, never echoes the value


def test_choices_are_accepted_in_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INBOX_BACKEND", "Memory")
    monkeypatch.setenv("INBOX_SYNCHRONOUS", "normal")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    settings = BotSettings(**SECRETS)
    assert (settings.inbox_backend, settings.inbox_synchronous, settings.log_level) == (
        "memory",
        "NORMAL",
        "DEBUG",
    )
