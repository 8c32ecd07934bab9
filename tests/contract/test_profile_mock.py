"""``messenger-bot profile apply|show`` against the mock's ``/me/messenger_profile``."""

from __future__ import annotations

import argparse
import asyncio
import io
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main
from bot.page_api import PageApi
from bot.profile import apply_profile, load_profile, read_profile
from bot.profile_cli import profile_command
from bot.testing import PAGE_ID, PAGE_TOKEN, make_settings
from mock_meta.testing import MockMetaServer
from tests.contract.graph_mock import BASE_URL, Mock, mock

__all__ = ["mock"]  # the fixture, imported for pytest

EXAMPLE = Path(__file__).parents[2] / "examples" / "profile.yaml"


def api(mock: Mock) -> PageApi:
    return PageApi(make_settings(graph_api_base=BASE_URL), transport=mock.transport)


async def run_profile(mock: Mock, **args: Any) -> tuple[int, str]:
    """``messenger-bot profile`` with ``args`` against ``mock``: exit code and output."""
    out = io.StringIO()
    code = await profile_command(
        argparse.Namespace(**args),
        make_settings(graph_api_base=BASE_URL),
        transport=mock.transport,
        out=out,
    )
    return code, out.getvalue()


async def test_apply_sets_every_property_then_changes_nothing_the_second_time(
    mock: Mock,
) -> None:
    async with api(mock) as page:
        first = await apply_profile(page, load_profile(EXAMPLE))
        assert sorted(first.set) == ["get_started", "greeting", "ice_breakers", "persistent_menu"]
        stored = mock.runtime.state.pages[PAGE_ID].messenger_profile
        assert stored["get_started"] == {"payload": "GET_STARTED"}
        assert stored["persistent_menu"][0]["call_to_actions"][2] == {
            "type": "web_url",
            "title": "Our website",
            "url": "https://example.com/",
        }
        assert [g["locale"] for g in stored["greeting"]] == ["default", "fr_FR"]

        second = await apply_profile(page, load_profile(EXAMPLE))
        assert second.empty and sorted(second.unchanged) == sorted(first.set)


async def test_apply_prints_a_diff_of_what_changed_and_leaves_other_properties(
    mock: Mock, tmp_path: Path
) -> None:
    profile = mock.runtime.state.pages[PAGE_ID].messenger_profile
    profile["whitelisted_domains"] = ["https://example.com"]
    profile["greeting"] = [{"locale": "default", "text": "Old hello"}]
    file = tmp_path / "profile.yaml"
    file.write_text("greeting: New hello\n")

    code, out = await run_profile(mock, action="apply", file=file, dry_run=False)

    assert code == 0
    assert "~ greeting" in out
    assert '-    "text": "Old hello"' in out
    assert '+    "text": "New hello"' in out
    assert profile["greeting"] == [{"locale": "default", "text": "New hello"}]
    assert profile["whitelisted_domains"] == ["https://example.com"]


async def test_dry_run_changes_nothing(mock: Mock) -> None:
    code, out = await run_profile(mock, action="apply", file=EXAMPLE, dry_run=True)
    assert code == 0 and "+ get_started" in out
    assert "nothing was changed" in out
    assert mock.runtime.state.pages[PAGE_ID].messenger_profile == {}


async def test_show_prints_the_current_profile_as_yaml(mock: Mock) -> None:
    async with api(mock) as page:
        await apply_profile(page, load_profile(EXAMPLE))
        assert (await read_profile(page))["get_started"] == {"payload": "GET_STARTED"}
    code, out = await run_profile(mock, action="show")
    assert code == 0 and "payload: GET_STARTED" in out


async def test_graph_refusals_are_one_line_without_the_token(
    mock: Mock, capsys: pytest.CaptureFixture[str]
) -> None:
    code = await profile_command(
        argparse.Namespace(action="show"),
        make_settings(graph_api_base=BASE_URL, page_access_token="wrong_secret_token"),
        transport=mock.transport,
    )
    err = capsys.readouterr().err
    assert code == 1 and "(#190)" in err and "wrong_secret_token" not in err


def test_the_cli_names_a_missing_page_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("MESSENGER_PAGE_ACCESS_TOKEN", raising=False)
    assert main(["profile", "show"]) == 2
    assert "MESSENGER_PAGE_ACCESS_TOKEN" in capsys.readouterr().err


async def test_one_command_applies_the_example_to_a_running_mock(
    mock_meta_server: MockMetaServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("GRAPH_API_BASE", mock_meta_server.base_url)
    monkeypatch.setenv("MESSENGER_PAGE_ACCESS_TOKEN", PAGE_TOKEN)
    assert await asyncio.to_thread(main, ["profile", "apply", str(EXAMPLE)]) == 0
    assert "+ persistent_menu" in capsys.readouterr().out
    assert await asyncio.to_thread(main, ["profile", "apply", str(EXAMPLE)]) == 0
    assert "nothing to change" in capsys.readouterr().out
