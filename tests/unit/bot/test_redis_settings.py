"""The Redis backend's settings refuse what cannot work, naming the variable."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bot.settings import BotSettings

SECRETS = {
    "MESSENGER_VERIFY_TOKEN": "v",
    "MESSENGER_APP_SECRET": "s",
    "MESSENGER_PAGE_ACCESS_TOKEN": "t",
}


def test_redis_is_a_backend_choice_and_its_url_is_a_secret() -> None:
    settings = BotSettings(**SECRETS, INBOX_BACKEND="redis", REDIS_URL="redis://:pw@db:6379/0")
    assert settings.inbox_backend == "redis"
    assert "pw" not in repr(settings)
    with pytest.raises(ValidationError, match="INBOX_BACKEND"):
        BotSettings(**SECRETS, INBOX_BACKEND="postgres")


def test_a_lease_must_outlive_two_claim_intervals() -> None:
    with pytest.raises(ValidationError, match="REDIS_CLAIM_INTERVAL_SECONDS"):
        BotSettings(**SECRETS, REDIS_LEASE_SECONDS=1.0, REDIS_CLAIM_INTERVAL_SECONDS=0.6)
