"""Edge limits come from the settings, and the connection cap always fits ``ulimit -n``."""

from __future__ import annotations

import logging

import pytest

from bot import http_guard
from bot.http_guard import EdgeLimits
from bot.settings import BotSettings

SETTINGS = BotSettings(
    MESSENGER_VERIFY_TOKEN="v",
    MESSENGER_APP_SECRET="s",
    MESSENGER_PAGE_ACCESS_TOKEN="t",
    HTTP_MAX_HEADER_BYTES=8192,
    HTTP_HEADER_TIMEOUT_SECONDS=3,
    HTTP_BODY_TIMEOUT_SECONDS=7,
    HTTP_MAX_CONNECTIONS=1000,
)


def test_limits_follow_the_settings_under_a_roomy_descriptor_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(http_guard.resource, "getrlimit", lambda _: (65536, 65536))
    assert EdgeLimits.from_settings(SETTINGS) == EdgeLimits(
        max_header_bytes=8192, header_timeout=3, body_timeout=7, max_connections=1000
    )


def test_the_connection_cap_is_lowered_to_fit_the_descriptor_limit_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # 1,100 slow connections under a 1,024-descriptor limit starved a real webhook: the cap
    # must leave descriptors for the inbox and the Send API.
    monkeypatch.setattr(http_guard.resource, "getrlimit", lambda _: (1024, 4096))
    with caplog.at_level(logging.WARNING, logger="bot.http_guard"):
        limits = EdgeLimits.from_settings(SETTINGS)
    assert limits.max_connections == 1024 - 64
    assert "HTTP_MAX_CONNECTIONS lowered from 1000 to 960" in caplog.text
