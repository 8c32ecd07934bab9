"""Start and stop the benchmark's processes: pinned with ``taskset -c``, on free loopback ports.

Every process is started in its own session and stopped by its own pid (SIGTERM, then
SIGKILL after a grace period), so a benchmark never touches anything it did not start.

>>> with Service.start("bare", [PY, "-c", "import time; time.sleep(30)"], cpu=RECEIVER_CPU,
...                    log_dir=Path("/tmp")) as svc:
...     svc.pid > 0
True
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from loadtests.processes import StopOnExit

PY = sys.executable
# The receiver under test gets core 0 alone; the generator, the stub and this process core 1.
RECEIVER_CPU = 0
LOAD_CPU = 1
UVICORN = ["-m", "uvicorn", "--loop", "uvloop", "--http", "httptools", "--no-access-log"]


class BenchError(RuntimeError):
    """A benchmark could not run (a process did not start, a tool is missing...)."""


def cpu_count() -> int:
    """CPUs of the machine (not this process's affinity, which :func:`pin_self` narrows)."""
    return os.cpu_count() or 1


def pin_self(cpu: int) -> None:
    """Keep the orchestrator off the receiver's core."""
    if cpu_count() > 1:
        os.sched_setaffinity(0, {cpu})


def cpu_pressure() -> float | None:
    """Share of the last 10 s some task waited for a CPU (Linux PSI), or None if unknown.

    Above a few percent, other processes compete with the benchmark and numbers are noisy.
    """
    try:
        first = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    fields = dict(part.split("=", 1) for part in first.split()[1:])
    return float(fields.get("avg10", "0")) / 100


def free_port() -> int:
    """A loopback port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinned(cmd: list[str], cpu: int | None) -> list[str]:
    """Prefix ``cmd`` with ``taskset -c cpu`` (nothing on a one-core machine)."""
    if cpu is None or cpu_count() < 2:
        return cmd
    return ["taskset", "-c", str(cpu), *cmd]


def http_get(port: int, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def http_post(port: int, path: str, body: bytes = b"", timeout: float = 5.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


class Service(StopOnExit):
    """One child process with its log file; a context manager that always stops it."""

    def __init__(self, name: str, proc: subprocess.Popen[bytes], log_path: Path) -> None:
        self.name = name
        self.proc = proc
        self.log_path = log_path

    @classmethod
    def start(
        cls,
        name: str,
        cmd: list[str],
        *,
        cpu: int | None,
        log_dir: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Service:
        log_path = log_dir / f"{name}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                pinned(cmd, cpu),
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                cwd=cwd,
                start_new_session=True,
            )
        return cls(name, proc, log_path)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, port: int, path: str, *, timeout: float = 20.0) -> None:
        """Poll ``GET path`` until it answers below 500, or raise with the log's tail."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                status, _ = http_get(port, path, timeout=1.0)
                if status < 500:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise BenchError(f"{self.name} did not become ready:\n{self.log_tail()}")

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, grace: float = 5.0) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(grace)


def uvicorn_service(
    name: str, factory: str, *, port: int, cpu: int | None, log_dir: Path, env: dict[str, str]
) -> Service:
    """A uvicorn process serving ``factory`` (``module:function``) on 127.0.0.1:port."""
    cmd = [PY, *UVICORN, "--factory", factory, "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--log-level", "warning", "--backlog", "4096"]
    return Service.start(name, cmd, cpu=cpu, log_dir=log_dir, env=env)
