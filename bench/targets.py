"""The processes a benchmark measures or leans on, each started pinned on a free port.

* receivers (core 0): the bare ASGI reference, a minimal FastAPI route, the bot, the
  Express peer;
* helpers (core 1): the Send API stub.

Each ``start_*`` returns a running :class:`Target`; use it as a context manager.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.events import APP_SECRET, PAGE_ID, PAGE_TOKEN, VERIFY_TOKEN
from bench.procs import (
    LOAD_CPU,
    PY,
    RECEIVER_CPU,
    BenchError,
    Service,
    free_port,
    http_get,
    http_post,
    uvicorn_service,
)
from loadtests.processes import StopOnExit

EXPRESS_DIR = Path(__file__).parent / "peers" / "express-bot"


@dataclass
class Target(StopOnExit):
    name: str
    port: int
    service: Service

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.service.stop()


def _secrets_env(graph_base: str) -> dict[str, str]:
    return {
        "MESSENGER_APP_SECRET": APP_SECRET,
        "MESSENGER_VERIFY_TOKEN": VERIFY_TOKEN,
        "MESSENGER_PAGE_ACCESS_TOKEN": PAGE_TOKEN,
        "MESSENGER_PAGE_ID": PAGE_ID,
        "GRAPH_API_BASE": graph_base,
        "GRAPH_API_VERSION": "v25.0",
    }


def start_reference(kind: str, log_dir: Path, *, cpu: int = RECEIVER_CPU) -> Target:
    """``kind`` is ``bare`` (raw ASGI) or ``fastapi`` (one route); see ``bench.receivers``."""
    port = free_port()
    factory = {
        "bare": "bench.receivers:bare_from_env",
        "fastapi": "bench.receivers:fastapi_from_env",
    }
    service = uvicorn_service(
        kind, factory[kind], port=port, cpu=cpu, log_dir=log_dir, env=_secrets_env("")
    )
    service.wait_ready(port, "/_count")
    return Target(kind, port, service)


def start_stub(
    log_dir: Path, *, latency_ms: float = 0.0, name: str = "stub", cpu: int = LOAD_CPU
) -> Target:
    port = free_port()
    env = {"BENCH_STUB_LATENCY_MS": str(latency_ms)}
    service = uvicorn_service(
        name, "bench.send_stub:from_env", port=port, cpu=cpu, log_dir=log_dir, env=env
    )
    service.wait_ready(port, "/_stats")
    return Target(name, port, service)


def stub_stats(stub: Target) -> dict[str, int]:
    _, body = http_get(stub.port, "/_stats")
    stats: dict[str, int] = json.loads(body)
    return stats


def reset_stub(stub: Target) -> None:
    http_post(stub.port, "/_reset")


def start_bot(
    log_dir: Path,
    graph_base: str,
    *,
    name: str = "bot",
    extra_env: dict[str, str] | None = None,
    cpu: int | None = RECEIVER_CPU,
) -> Target:
    """The bot as users run it (``messenger-bot serve``) with a fresh durable inbox."""
    port = free_port()
    inbox_dir = Path(tempfile.mkdtemp(prefix="bench-inbox-", dir=log_dir))
    env = {
        **_secrets_env(graph_base),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "INBOX_BACKEND": "sqlite",
        "INBOX_PATH": str(inbox_dir / "inbox.db"),
        "LOG_LEVEL": "WARNING",
        **(extra_env or {}),
    }
    service = Service.start(name, [PY, "-m", "bot.cli", "serve"], cpu=cpu, log_dir=log_dir, env=env)
    service.wait_ready(port, "/healthz", timeout=30.0)
    return Target(name, port, service)


def ensure_express_installed() -> None:
    """``npm install`` the peer's pinned dependencies into its own node_modules (once)."""
    if (EXPRESS_DIR / "node_modules" / "express").is_dir():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise BenchError("npm is not installed: the Express peer cannot run")
    done = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--no-package-lock", "--omit=dev"],
        cwd=EXPRESS_DIR,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"npm install failed:\n{done.stderr[-2000:]}")


def start_mock(log_dir: Path, callback_url: str) -> Target:
    """``mock-meta serve`` on core 0, its seeded app delivering to ``callback_url``."""
    port = free_port()
    cmd = [PY, "-m", "mock_meta.cli", "serve", "--port", str(port), "--callback-url", callback_url]
    service = Service.start("mock", cmd, cpu=RECEIVER_CPU, log_dir=log_dir)
    service.wait_ready(port, "/_mock/health")
    return Target("mock", port, service)


def sink_count(sink: Target) -> int:
    """POSTs a reference receiver accepted so far (``GET /_count``)."""
    _, body = http_get(sink.port, "/_count")
    return int(json.loads(body)) if body.strip().isdigit() else int(json.loads(body)["accepted"])


def start_express(log_dir: Path, graph_base: str) -> Target:
    node = shutil.which("node")
    if node is None:
        raise BenchError("node is not installed: the Express peer cannot run")
    ensure_express_installed()
    port = free_port()
    env = {**_secrets_env(graph_base), "PORT": str(port), "NODE_ENV": "production"}
    service = Service.start(
        "express", [node, "index.js"], cpu=RECEIVER_CPU, log_dir=log_dir, env=env, cwd=EXPRESS_DIR
    )
    service.wait_ready(port, "/webhook")
    return Target("express", port, service)
