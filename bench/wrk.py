"""Closed-loop load with wrk (C, keep-alive): the top rate a receiver can ack.

wrk's Lua cannot sign, so it cycles through a file of pre-signed bodies
(``bench/wrk_signed.lua``); the script prints one ``BENCH_JSON`` line that
:func:`parse_wrk_output` reads.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bench.procs import LOAD_CPU, BenchError, pinned

LUA = Path(__file__).with_name("wrk_signed.lua")
LUA_POST = Path(__file__).with_name("wrk_post.lua")


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_s: float
    errors: int  # connect/read/write/timeout errors plus non-2xx answers
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    wraps: int  # times a thread ran out of unique bodies and reused them

    @property
    def ok_per_s(self) -> float:
        """Acked (2xx) requests per second."""
        return max(self.requests - self.errors, 0) / self.duration_s if self.duration_s else 0.0


def parse_wrk_output(text: str) -> WrkResult:
    """Read the ``BENCH_JSON {...}`` line the Lua ``done()`` printed.

    >>> parse_wrk_output('x\\nBENCH_JSON {"requests":10,"duration_us":2000000,"connect":0,'
    ...     '"read":0,"write":0,"status":1,"timeout":0,"p50_us":1000,"p90_us":2000,'
    ...     '"p99_us":3000,"max_us":4000,"wraps":0}\\n').ok_per_s
    4.5
    """
    for line in text.splitlines():
        if line.startswith("BENCH_JSON "):
            raw = json.loads(line[len("BENCH_JSON ") :])
            errors = sum(raw[k] for k in ("connect", "read", "write", "status", "timeout"))
            return WrkResult(
                requests=raw["requests"],
                duration_s=raw["duration_us"] / 1e6,
                errors=errors,
                p50_ms=raw["p50_us"] / 1000,
                p90_ms=raw["p90_us"] / 1000,
                p99_ms=raw["p99_us"] / 1000,
                max_ms=raw["max_us"] / 1000,
                wraps=raw["wraps"],
            )
    raise BenchError(f"wrk printed no result:\n{text[-2000:]}")


def run_wrk(
    url: str,
    bodies: Path,
    *,
    duration_s: float,
    connections: int = 64,
    threads: int = 2,
    cpu: int | None = LOAD_CPU,
) -> WrkResult:
    """Drive ``url`` with signed POSTs for ``duration_s`` over keep-alive connections."""
    script = ["-s", str(LUA), url, "--", str(bodies), str(threads)]
    return _wrk(script, duration_s, connections, threads, cpu)


def run_wrk_post(
    base_url: str,
    requests: Path,
    *,
    duration_s: float,
    connections: int = 32,
    threads: int = 2,
    cpu: int | None = LOAD_CPU,
) -> WrkResult:
    """Cycle through the ``<path>\t<json>`` lines of ``requests``, POSTed to ``base_url``."""
    script = ["-s", str(LUA_POST), base_url, "--", str(requests)]
    return _wrk(script, duration_s, connections, threads, cpu)


def _wrk(
    script: list[str], duration_s: float, connections: int, threads: int, cpu: int | None
) -> WrkResult:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise BenchError("wrk is not installed (apt-get install wrk)")
    cmd = [wrk, f"-t{threads}", f"-c{connections}", f"-d{duration_s:g}s", "--timeout", "5s"]
    cmd += script
    done = subprocess.run(
        pinned(cmd, cpu), capture_output=True, text=True, timeout=duration_s + 60, check=False
    )
    return parse_wrk_output(done.stdout + done.stderr)
