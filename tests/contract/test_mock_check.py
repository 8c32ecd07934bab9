"""``mock-meta check`` against our own bot: every check it can pass today passes."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from mock_meta.check import CheckOptions, ReportCard, Status, run_checks
from mock_meta.check.report import format_table
from mock_meta.runtime import MockRuntime
from mock_meta.settings import MockSettings
from tests.contract.bot_mock_pair import StartPair

pytestmark = pytest.mark.timeout(240)  # seventeen checks, a few seconds each


@dataclass
class PairMock:
    """The mock of a bot/mock pair, as ``run_checks`` sees a running mock."""

    runtime: MockRuntime
    settings: MockSettings
    base_url: str


@pytest.fixture
async def our_card(start_pair: StartPair) -> ReportCard:
    # The bot's production defaults for ordering and back-off (the pair shortens them).
    pair = await start_pair(
        ORDERING_WINDOW_MS=100,
        SEND_API_BACKOFF_BASE_SECONDS=0.2,
        SEND_API_BACKOFF_MAX_SECONDS=1.0,
    )
    runtime: MockRuntime = pair.graph.app.state.runtime  # type: ignore[attr-defined]
    mock = PairMock(runtime, runtime.settings, pair.mock_url)
    card = await run_checks(mock, CheckOptions(callback_url=f"{pair.bot_url}/webhook"))
    print(format_table(card))  # shown by pytest when a check fails
    return card


async def test_our_bot_passes_every_check(our_card: ReportCard) -> None:
    assert [r.id for r in our_card.results if r.status is not Status.PASSED] == []
