"""The red-team suite: hostile clients against real servers on loopback, bounded in time.

Every test ends the way a user would judge it: the hostile input got a 4xx or a closed
connection (never a 5xx), and a good, signed event sent AFTER it is still acked and answered.

Bot tests use the system tier's fixtures (``start_bot``, ``send_api_recorder``, ``bot_env``,
``webhook_events``, ``poll``; see ``tests/system/conftest.py``), re-exported here, and the
helpers of ``tests/hostile/raw_http.py`` (byte-exact requests, the after-check). Mock tests use
the ``mock_meta`` pytest plugin's fixtures.
"""

from __future__ import annotations

import pytest

from tests.system.conftest import (  # noqa: F401  (fixtures, re-exported for this directory)
    bot_env,
    poll,
    send_api_recorder,
    start_bot,
    webhook_events,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/hostile/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.hostile)
