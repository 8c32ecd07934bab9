"""Browser tests of the mock's web console: Debian's Chromium driven by Playwright.

Fixtures:

* ``console_page`` — a fresh headless Chromium page (1280×800, a laptop) with
  ``shoot(name)`` writing a screenshot under ``reports/browser/`` (test artifacts).
* ``console_world`` — a mock_meta server in this process (its console at ``/``) and a real
  ``messenger-bot`` process (the system tests' ``start_bot``) running
  ``console_menu_bot.py``, wired to each other.

Without Chromium or the ``playwright`` package the tests skip with the reason; under
``REQUIRE_SERVICES=1`` (CI) they fail instead. Playwright's own browser download is never
used: the launch points at the system executable.
"""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from mock_meta.settings import DEFAULT_APP_ID, MockSettings
from mock_meta.state import MESSAGING_FIELDS
from mock_meta.testing import MockMetaServer
from tests.conftest import require_binary, services_required
from tests.system import conftest as system_fixtures
from tests.system.conftest import BotProcess

HERE = Path(__file__).parent
REPORTS = HERE.parents[1] / "reports" / "browser"
# Flags that work as root on a closed network (no sandbox, no background fetches).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# The bot-process fixtures of the system tests, shared rather than copied.
start_bot = system_fixtures.start_bot
bot_env = system_fixtures.bot_env
send_api_recorder = system_fixtures.send_api_recorder
# Generous: two cores shared by many processes.
UI_TIMEOUT_MS = 20_000


def _require_playwright() -> None:
    if importlib.util.find_spec("playwright") is None:
        message = "the playwright package is not installed (pip install -e '.[dev]')"
        if services_required():
            pytest.fail(f"REQUIRE_SERVICES=1 but {message}")
        pytest.skip(message)


@pytest.fixture
def chromium_path() -> str:
    _require_playwright()
    return require_binary("chromium")


@dataclass
class ConsolePage:
    page: Any  # playwright.async_api.Page
    test_name: str

    async def shoot(self, name: str) -> Path:
        """Screenshot the viewport to ``reports/browser/<test>-<name>.png``."""
        REPORTS.mkdir(parents=True, exist_ok=True)
        path = REPORTS / f"{self.test_name}-{name}.png"
        await self.page.screenshot(path=str(path))
        return path

    async def open(self, base_url: str, screen: str = "conversation") -> None:
        from playwright.async_api import expect

        await self.page.goto(f"{base_url}/#{screen}")
        await expect(self.page.locator("#live")).to_have_text("live")

    async def screen(self, name: str) -> None:
        """Switch screens through the navigation, as a user would."""
        from playwright.async_api import expect

        link = self.page.get_by_role("navigation").get_by_role("link", name=name)
        await link.click()
        await expect(link).to_have_attribute("aria-current", "page")


@pytest_asyncio.fixture
async def console_page(
    chromium_path: str, request: pytest.FixtureRequest
) -> AsyncIterator[ConsolePage]:
    from playwright.async_api import async_playwright, expect

    expect.set_options(timeout=UI_TIMEOUT_MS)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium_path, args=CHROMIUM_ARGS
        )
        context = await browser.new_context(viewport={"width": 1280, "height": 800})
        context.set_default_timeout(UI_TIMEOUT_MS)
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            yield ConsolePage(page, request.node.name.replace("[", "-").rstrip("]"))
        finally:
            await browser.close()
        assert not errors, f"JavaScript errors in the console: {errors}"


@dataclass
class ConsoleWorld:
    mock: MockMetaServer
    bot: Any  # BotProcess, or a bench Target for the Express peer

    @property
    def url(self) -> str:
        return self.mock.base_url


def point_seed_app_at(mock: MockMetaServer, bot_url: str) -> None:
    """Where the seeded app's webhooks go (what a completed subscription would set)."""
    mock.runtime.state.subscribe_app(
        DEFAULT_APP_ID,
        fields=MESSAGING_FIELDS,
        callback_url=f"{bot_url}/webhook",
        verify_token=mock.settings.verify_token.get_secret_value(),
    )


@pytest_asyncio.fixture
async def console_world(
    start_bot: Callable[..., BotProcess], chromium_path: str
) -> AsyncIterator[ConsoleWorld]:
    async with MockMetaServer(MockSettings(port=0)) as mock:
        bot = start_bot(
            GRAPH_API_BASE=mock.base_url,
            BOT_HANDLERS_MODULE="console_menu_bot",
            PYTHONPATH=str(HERE),
        )
        point_seed_app_at(mock, bot.url)
        yield ConsoleWorld(mock, bot)


@pytest_asyncio.fixture
async def express_world(tmp_path: Path, chromium_path: str) -> AsyncIterator[ConsoleWorld]:
    """Like ``console_world`` with the Express peer (``bench/peers/express-bot``) as the bot."""
    from bench.targets import BenchError, start_express

    require_binary("node")
    async with MockMetaServer(MockSettings(port=0)) as mock:
        try:
            express = start_express(tmp_path, mock.base_url)
        except BenchError as exc:
            if services_required():
                pytest.fail(f"REQUIRE_SERVICES=1 but the Express peer cannot run: {exc}")
            pytest.skip(f"the Express peer cannot run: {exc}")
        try:
            point_seed_app_at(mock, express.url)
            yield ConsoleWorld(mock, express)
        finally:
            express.stop()
