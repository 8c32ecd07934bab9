"""Which Graph version answers a call (reference §10): expired ones are upgraded or refused."""

from __future__ import annotations

from datetime import date

import pytest

from mock_meta.graph_errors import GraphError
from mock_meta.graph_versions import is_expired, oldest_available, serve_version


@pytest.mark.parametrize(
    ("version", "today", "expired"),
    [
        ("v20.0", date(2026, 9, 24), False),  # its last day
        ("v20.0", date(2026, 9, 25), True),
        ("v2.0", date(2020, 1, 1), True),  # older than every listed version: long gone
        ("v26.0", date(2040, 1, 1), False),  # no end date announced
        ("v27.0", date(2026, 1, 1), False),  # newer than the table: served as asked
    ],
)
def test_a_version_expires_after_its_last_day(version: str, today: date, expired: bool) -> None:
    assert is_expired(version, today) is expired


def test_an_expired_call_is_served_by_the_oldest_available_version() -> None:
    today = date(2027, 2, 1)  # v20.0 and v21.0 are gone
    assert oldest_available(today) == "v22.0"
    assert serve_version("v19.0", today=today, expired="upgrade") == "v22.0"
    assert serve_version("v23.0", today=today, expired="upgrade") == "v23.0"


def test_reject_answers_graph_error_12_naming_the_oldest_version() -> None:
    with pytest.raises(GraphError) as caught:
        serve_version("v21.0", today=date(2027, 2, 1), expired="reject")
    assert caught.value.code == 12 and caught.value.http_status == 400
    assert "v22.0" in caught.value.message
