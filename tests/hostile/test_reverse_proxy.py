"""The HAProxy recipe of docs/deployment.md, run as written in front of a real bot: signed
events pass through untouched and are answered; oversized headers and bodies stop at the proxy.
The config is read from the document, so the recipe cannot rot unnoticed."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import require_binary
from tests.hostile.raw_http import assert_still_answers
from tests.system.conftest import (
    BotProcess,
    SendApiRecorder,
    free_listening_socket,
    running_haproxy,
    signed_envelope,
    text_event,
)

pytestmark = pytest.mark.system

StartBot = Callable[..., BotProcess]
DEPLOYMENT_DOC = Path(__file__).parents[2] / "docs" / "deployment.md"


def haproxy_config(bot_url: str, listen_fd: int) -> str:
    """The document's HAProxy config, bound to an inherited socket and pointed at ``bot_url``."""
    text = DEPLOYMENT_DOC.read_text()
    match = re.search(r"```haproxy\n(.*?)```", text, re.S)
    assert match, "docs/deployment.md has no haproxy block"
    config = re.sub(r"^(\s*)bind .*$", rf"\1bind fd@{listen_fd}", match.group(1), flags=re.M)
    bot_address = bot_url.removeprefix("http://")
    config, servers = re.subn(r"127\.0\.0\.1:8000", bot_address, config)
    assert servers == 1, "the recipe should name the bot's loopback address once"
    return config


@pytest.fixture
def proxied_bot(start_bot: StartBot, tmp_path: Path) -> Iterator[tuple[BotProcess, str]]:
    haproxy = require_binary("haproxy")
    bot = start_bot()
    sock = free_listening_socket()
    config = tmp_path / "haproxy.cfg"
    config.write_text(haproxy_config(bot.url, sock.fileno()))
    check = subprocess.run(
        [haproxy, "-c", "-f", str(config)],
        pass_fds=(sock.fileno(),),
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    host, port = sock.getsockname()[:2]
    url = f"http://{host}:{port}"
    try:
        with running_haproxy(haproxy, config, url, pass_fds=(sock.fileno(),)):
            yield bot, url
    finally:
        sock.close()


def test_signed_events_pass_the_proxy_untouched_and_are_answered(
    proxied_bot: tuple[BotProcess, str], send_api_recorder: SendApiRecorder
) -> None:
    _bot, url = proxied_bot
    psid = "7600000000000001"
    body, headers = signed_envelope([text_event("m_proxied", psid=psid)])
    response = httpx.post(f"{url}/webhook", content=body, headers=headers, timeout=10)
    assert response.status_code == 200
    assert response.text == "EVENT_RECEIVED"
    assert send_api_recorder.wait_for(lambda r: r.replies_to(psid))


def test_the_proxy_refuses_huge_headers_bodies_and_other_paths(
    proxied_bot: tuple[BotProcess, str], send_api_recorder: SendApiRecorder
) -> None:
    bot, url = proxied_bot
    headers = {"X-Junk": "a" * 100_000}
    assert httpx.post(f"{url}/webhook", content=b"{}", headers=headers, timeout=10).status_code in (
        400,
        431,
    )
    huge = httpx.post(f"{url}/webhook", content=b" " * (2 * 1024 * 1024), timeout=10)
    assert huge.status_code == 413
    assert httpx.get(f"{url}/metrics", timeout=10).status_code == 404  # never public
    assert_still_answers(bot, send_api_recorder)
