"""The shipped ``deploy/haproxy.cfg`` and the config the tests and the bench run agree."""

from __future__ import annotations

from pathlib import Path

from loadtests.haproxy import haproxy_config

SAMPLE = Path(__file__).resolve().parents[3] / "deploy" / "haproxy.cfg"


def _directives(text: str) -> set[str]:
    """Every setting, without comments and without the addresses that differ by design."""
    lines = {line.split("#")[0].strip() for line in text.splitlines()}
    return {line for line in lines if line and not line.startswith(("bind ", "server ", "maxconn"))}


def test_the_sample_config_has_the_settings_the_failover_test_proves() -> None:
    assert _directives(SAMPLE.read_text()) == _directives(haproxy_config(8000, [8001, 8002]))
