"""Platform state: seeding, subscriptions at both levels, disabling, and the window clock."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from mock_meta.metrics import MockMetrics
from mock_meta.settings import MockSettings
from mock_meta.state import PlatformState, StateError

APP, PAGE, PSID = "1234567890123456", "104501234567890", "6543210987654321"


def test_builtin_seed_matches_the_bots_demo_defaults() -> None:
    state = PlatformState.from_settings(MockSettings())
    grant = state.token_grant("test_page_token")
    assert grant is not None and (grant.page_id, grant.app_id) == (PAGE, APP)
    assert state.app_secret(APP) == "test_app_secret"
    assert state.apps[APP].callback_url == "http://127.0.0.1:8000/webhook"
    assert state.has_user(PAGE, PSID)
    assert state.is_delivering(APP, PAGE, "messages")


def test_yaml_and_json_seed_files_replace_the_builtin_world(tmp_path: Path) -> None:
    seed = {
        "apps": [{"id": "1", "secret": "s", "verify_token": "v", "callback_url": "http://x/"}],
        "pages": [{"id": "2", "token": "tok", "app_id": "1", "subscribed_fields": ["messages"]}],
        "users": [{"psid": "3", "page_id": "2", "first_name": "Ada"}],
    }
    (tmp_path / "seed.json").write_text(json.dumps(seed))
    (tmp_path / "seed.yaml").write_text(
        "apps: [{id: '1', secret: s}]\npages: [{id: '2', tokens: [tok]}]\nusers: [{psid: '3'}]\n"
    )
    for name in ("seed.json", "seed.yaml"):
        state = PlatformState.from_settings(MockSettings(seed_file=tmp_path / name))
        assert list(state.apps) == ["1"] and state.has_user("2", "3")
        assert state.token_grant("test_page_token") is None
    json_state = PlatformState.from_settings(MockSettings(seed_file=tmp_path / "seed.json"))
    assert not json_state.is_delivering("1", "2", "message_echoes")


def test_a_malformed_seed_is_refused_with_a_reason() -> None:
    with pytest.raises(StateError, match="malformed seed"):
        PlatformState({"apps": [{"no_id": True}]})


def test_delivery_needs_the_field_at_app_and_page_level() -> None:
    state = PlatformState.from_settings(MockSettings())
    state.subscribe_page(PAGE, APP, ["messages"])
    state.unsubscribe_app(APP, ["message_reads"])
    assert state.is_delivering(APP, PAGE, "messages")
    assert not state.is_delivering(APP, PAGE, "message_echoes")  # page level missing
    state.subscribe_page(PAGE, APP, ["messages", "message_reads"])
    assert not state.is_delivering(APP, PAGE, "message_reads")  # app level missing


def test_disable_stops_delivery_until_the_page_subscribes_again() -> None:
    registry = CollectorRegistry()
    state = PlatformState.from_settings(MockSettings(), metrics=MockMetrics(registry))
    state.disable(APP, PAGE, "failing for 60 minutes")
    assert not state.is_delivering(APP, PAGE, "messages") and state.pages[PAGE].disabled
    assert registry.get_sample_value("mock_meta_page_subscriptions", {"state": "disabled"}) == 1
    state.subscribe_page(PAGE, APP, ["messages"])
    assert state.is_delivering(APP, PAGE, "messages")
    assert registry.get_sample_value("mock_meta_page_subscriptions", {"state": "active"}) == 1


def test_created_ids_are_unique_and_clashes_are_refused() -> None:
    state = PlatformState.from_settings(MockSettings())
    users = [state.create_user() for _ in range(3)]
    assert len({u.psid for u in users}) == 3 and all(u.page_id == PAGE for u in users)
    with pytest.raises(StateError):
        state.create_user(psid=PSID, page_id=PAGE)
    with pytest.raises(StateError):
        state.create_page(tokens=["test_page_token"])
    with pytest.raises(StateError):
        state.create_user(page_id="nope")


def test_reset_forgets_created_things_and_closes_windows() -> None:
    state = PlatformState.from_settings(MockSettings())
    state.create_user(psid="42")
    state.record_inbound(PAGE, PSID, 100.0)
    state.reset()
    assert not state.has_user(PAGE, "42") and state.last_inbound(PAGE, PSID) is None


def test_app_tokens_are_app_id_pipe_secret() -> None:
    state = PlatformState.from_settings(MockSettings())
    assert state.app_for_app_token(f"{APP}|test_app_secret") is state.apps[APP]
    assert state.app_for_app_token(f"{APP}|wrong") is None
    assert state.app_for_app_token("test_page_token") is None


def test_config_view_never_contains_secrets_or_tokens() -> None:
    text = json.dumps(PlatformState.from_settings(MockSettings()).config())
    assert "test_app_secret" not in text and "test_page_token" not in text
    assert "test_verify_token" not in text
