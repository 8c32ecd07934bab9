"""Project-wide test helpers.

``require_binary("promtool")`` skips with a clear reason on a laptop without the binary, but
fails when ``REQUIRE_SERVICES=1`` (CI), where a missing service is a broken setup, not a skip.
``redis_server`` / ``start_redis`` run a real ``redis-server`` the same way.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.redis_server import RedisServer


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


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real ``redis-server`` for the whole run; tests keep apart by a fresh key prefix."""
    binary = require_binary("redis-server")
    with RedisServer.start(tmp_path_factory.mktemp("redis"), binary=binary) as server:
        yield server


@pytest.fixture
def start_redis(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """``start_redis(appendfsync="everysec")`` -> a private ``redis-server`` (for tests that
    kill or restart it); stopped after the test."""
    binary = require_binary("redis-server")
    servers: list[RedisServer] = []

    def start(appendfsync: str = "everysec") -> RedisServer:
        workdir = tmp_path / f"redis{len(servers)}"
        servers.append(RedisServer.start(workdir, binary=binary, appendfsync=appendfsync))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix no other test uses."""
    return f"t{uuid.uuid4().hex[:12]}"
