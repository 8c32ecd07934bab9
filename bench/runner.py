"""What every benchmark phase shares: the run's folder, durations, and the open-loop runner."""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.events import APP_SECRET, write_bodies
from bench.procs import LOAD_CPU, PY, BenchError, pinned


@dataclass
class Run:
    """One ``python -m bench`` invocation: where logs go and how long each phase lasts."""

    dir: Path
    seconds: float = 6.0  # one measurement (wrk or open-loop)
    probe_seconds: float = 20.0  # an overload probe in the end-to-end phase (issue 7: 20 s)
    probe_rate: float = 4000.0  # events/s offered by that probe: above what anyone sustains
    stub_latency_ms: float = 0.0  # added by the Send API stub to every request
    search_steps: int = 6  # sustain steps per receiver in the end-to-end phase
    outage_seconds: float = 120.0  # the fault runs' Send API outage
    seed: int | None = None  # the fault runs' random kill moments (None: drawn and printed)
    fault_runs: tuple[str, ...] = ()  # which fault runs ``faults`` does (empty: all)
    paired_rate: float = 1600.0  # ``paired``: the fixed rate every variant runs at
    variants: tuple[str, ...] = ()  # ``paired``: NAME=VALUE[,...] each (empty: defaults twice)
    repeats: int = 4  # ``paired``: turns, each running every variant once
    results: dict[str, Any] = field(default_factory=dict)
    _bodies_made: int = 0

    def bodies(self, count: int, label: str) -> Path:
        """A fresh file of ``count`` signed bodies whose mids were never sent in this run."""
        self._bodies_made += 1
        run_id = f"{int(time.time()) % 100000}{label}{self._bodies_made}"
        path = self.dir / f"bodies-{label}-{self._bodies_made}.txt"
        return write_bodies(path, APP_SECRET.encode(), count, run_id)

    def log(self, text: str) -> None:
        print(f"  · {text}", flush=True)


def open_loop(
    port: int,
    bodies: Path,
    *,
    rate: float,
    seconds: float,
    connections: int = 64,
    drain_timeout: float = 15.0,
) -> dict[str, Any]:
    """Run ``bench.openloop`` pinned on the load core and return its JSON report."""
    proc = open_loop_async(
        port,
        bodies,
        rate=rate,
        seconds=seconds,
        connections=connections,
        drain_timeout=drain_timeout,
    )
    return finish_open_loop(proc, timeout=seconds + drain_timeout + 30)


def open_loop_async(
    port: int,
    bodies: Path,
    *,
    rate: float,
    seconds: float,
    connections: int = 64,
    drain_timeout: float = 15.0,
) -> subprocess.Popen[str]:
    """Start the generator without waiting; read its report with :func:`finish_open_loop`."""
    cmd = openloop_command(port, bodies, rate, seconds, connections, drain_timeout)
    return subprocess.Popen(
        pinned(cmd, LOAD_CPU), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def openloop_command(
    port: int, bodies: Path, rate: float, seconds: float, connections: int, drain_timeout: float
) -> list[str]:
    """The generator's command line. Rate and duration travel exactly (``repr``): it sends
    ``int(rate * seconds)`` POSTs, which must be the count of bodies written for it. Rounded,
    a bisected rate such as 1491.8/s sent one POST more than there were bodies, so the last
    one re-used the first body's mid: acked as a duplicate, with no reply of its own, and
    counted as a lost reply.

    >>> cmd = openloop_command(80, Path("b"), 1491.816697212801, 6.0, 64, 15.0)
    >>> int(float(cmd[cmd.index("--rate") + 1]) * float(cmd[cmd.index("--duration") + 1]))
    8950
    """
    cmd = [PY, "-m", "bench.openloop", "--port", str(port), "--rate", repr(rate)]
    cmd += ["--duration", repr(seconds), "--bodies", str(bodies)]
    cmd += ["--connections", str(connections), "--drain-timeout", f"{drain_timeout:g}"]
    return cmd


def finish_open_loop(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    out, err = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise BenchError(f"open-loop generator failed:\n{err[-2000:]}")
    report: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return report
