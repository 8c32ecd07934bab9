"""The in-memory ``StateStore`` runs the state suite (the inboxes run it in their own suite)."""

from __future__ import annotations

import pytest

from bot.state import MemoryStateStore
from tests.unit.bot.state_conformance import StateStoreConformance


class TestMemoryStateStore(StateStoreConformance):
    @pytest.fixture
    def store(self) -> MemoryStateStore:
        return MemoryStateStore()
