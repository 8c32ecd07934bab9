"""Project-wide test helpers.

``require_binary("promtool")`` skips with a clear reason on a laptop without the binary, but
fails when ``REQUIRE_SERVICES=1`` (CI), where a missing service is a broken setup, not a skip.
"""

from __future__ import annotations

import os
import shutil

import pytest


def services_required() -> bool:
    return os.environ.get("REQUIRE_SERVICES", "") not in ("", "0", "false", "no")


def require_binary(name: str) -> str:
    """Return the path of ``name`` on PATH, or skip/fail as described above."""
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} is not installed (apt-get install the package that provides it)"
    if services_required():
        pytest.fail(f"REQUIRE_SERVICES=1 but {message}")
    pytest.skip(message)


@pytest.fixture
def prometheus_binary() -> str:
    """Path of the Prometheus server binary (Debian's ``prometheus`` package)."""
    return require_binary("prometheus")


@pytest.fixture
def promtool_binary() -> str:
    """Path of ``promtool`` (comes with Debian's ``prometheus`` package)."""
    return require_binary("promtool")
