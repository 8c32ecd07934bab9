"""The replicas bench phase's own arithmetic: a process's CPU from /proc."""

from __future__ import annotations

import os
from pathlib import Path

from bench.replicas import cpu_seconds


def test_cpu_seconds_adds_user_and_system_time_even_with_spaces_in_the_name() -> None:
    ticks = os.sysconf("SC_CLK_TCK")
    stat = f"42 (redis server) S {' '.join(['0'] * 10)} {ticks * 2} {ticks} 0 0"
    assert cpu_seconds(stat) == 3.0


def test_cpu_seconds_of_this_process_grows_with_work() -> None:
    before = cpu_seconds(Path("/proc/self/stat").read_text())
    sum(i * i for i in range(3_000_000))
    assert cpu_seconds(Path("/proc/self/stat").read_text()) > before
