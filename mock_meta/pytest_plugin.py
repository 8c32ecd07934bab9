"""pytest fixtures for testing a Messenger bot against mock_meta (auto-loaded via pytest11).

Fixtures (function-scoped: each test gets its own server, so parallel runs share nothing):

* ``mock_meta_settings`` — override it to point the mock at your bot (``callback_url``).
* ``mock_meta_server`` — a running :class:`mock_meta.testing.MockMetaServer` on 127.0.0.1.
* ``mock_meta`` — a :class:`mock_meta.client.MockMetaClient` for that server.

Example::

    @pytest.fixture
    def mock_meta_settings(bot_url):
        return MockSettings(callback_url=f"{bot_url}/webhook")

    async def test_bot_says_hello(mock_meta):
        action = await mock_meta.user("6543210987654321").send_text("hi")
        reply = await mock_meta.wait_for_reply("6543210987654321", action.action_id, timeout=5)
        assert "hello" in reply.message["text"].lower()

Heavy imports happen inside the fixtures: loading this plugin costs other test suites nothing.
The async fixtures need pytest-asyncio (``pip install 'messenger-harness[testing]'``); without
it the plugin still loads, and only a test that asks for them fails, saying what to install.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from mock_meta.client import MockMetaClient
    from mock_meta.settings import MockSettings
    from mock_meta.testing import MockMetaServer

NEEDS_PYTEST_ASYNCIO = (
    "the mock_meta fixtures are async and need pytest-asyncio: "
    "pip install 'messenger-harness[testing]' (or pytest-asyncio)"
)


def _async_fixture() -> Callable[[Any], Any]:
    """``pytest_asyncio.fixture`` when installed, else a fixture that explains what is missing.

    The wheel does not require pytest-asyncio, and a pytest11 plugin is loaded by every pytest
    session in the environment: a module-level import would break unrelated test suites.
    """
    try:
        import pytest_asyncio
    except ImportError:

        def unavailable(function: Any) -> Any:
            def explain() -> None:
                pytest.fail(NEEDS_PYTEST_ASYNCIO, pytrace=False)

            explain.__name__ = function.__name__
            explain.__doc__ = function.__doc__
            return pytest.fixture(explain)

        return unavailable
    fixture: Callable[[Any], Any] = pytest_asyncio.fixture
    return fixture


_fixture = _async_fixture()


@pytest.fixture
def mock_meta_settings() -> MockSettings:
    """Settings of the per-test mock; override in a conftest to set ``callback_url`` etc."""
    from mock_meta.settings import MockSettings

    return MockSettings(port=0)


@_fixture
async def mock_meta_server(mock_meta_settings: MockSettings) -> AsyncIterator[MockMetaServer]:
    """A real mock_meta server on a free loopback port, stopped after the test."""
    from mock_meta.testing import MockMetaServer

    async with MockMetaServer(mock_meta_settings) as server:
        yield server


@_fixture
async def mock_meta(mock_meta_server: MockMetaServer) -> AsyncIterator[MockMetaClient]:
    """A control-API client bound to ``mock_meta_server``."""
    from mock_meta.client import MockMetaClient

    async with MockMetaClient(mock_meta_server.base_url) as client:
        yield client
