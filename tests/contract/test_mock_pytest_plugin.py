"""The pytest plugin's fixtures, used the way a bot's test suite would use them."""

from __future__ import annotations

import httpx
import pytest

from mock_meta.client import MockMetaClient
from mock_meta.settings import MockSettings
from mock_meta.testing import MockMetaServer


@pytest.fixture
def mock_meta_settings() -> MockSettings:
    # Overriding the plugin's settings fixture, as a bot's conftest would.
    return MockSettings(page_name="Plugin Page", emit_echoes=False, emit_deliveries=False)


async def test_server_fixture_is_a_real_loopback_server(mock_meta_server: MockMetaServer) -> None:
    assert mock_meta_server.base_url.startswith("http://127.0.0.1:")
    async with httpx.AsyncClient(base_url=mock_meta_server.base_url) as graph:
        me = await graph.get("/v25.0/me", params={"access_token": "test_page_token"})
    assert me.json()["name"] == "Plugin Page"


async def test_each_test_starts_from_the_seed(mock_meta: MockMetaClient) -> None:
    config = await mock_meta.config()
    assert [u["psid"] for u in config["users"]] == ["6543210987654321"]
    await mock_meta.create_user(psid="111")  # invisible to every other test
    assert (await mock_meta.summary())["actions"] == 0


async def test_client_fixture_drives_the_mock(
    mock_meta: MockMetaClient, mock_meta_server: MockMetaServer
) -> None:
    user = await mock_meta.create_user(open_window=True)
    async with httpx.AsyncClient(base_url=mock_meta_server.base_url) as graph:
        await graph.post(
            "/me/messages",
            params={"access_token": "test_page_token"},
            json={"recipient": {"id": user.psid}, "message": {"text": "hello"}},
        )
    sends = await mock_meta.journal("sends", psid=user.psid)
    assert [s["request"]["message"] for s in sends] == [{"text": "hello"}]
