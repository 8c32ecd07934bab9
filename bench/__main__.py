"""``python -m bench [PHASE|all]`` — measure, in one run, and print ratios.

Each phase starts its own processes on free loopback ports, pins the receiver under test
to core 0 and everything else (wrk, the open-loop generator, the Send API stub, this
process) to core 1, and compares against a reference measured in the same run.
Results also go to ``reports/bench/latest.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.procs import LOAD_CPU, BenchError, cpu_count, cpu_pressure, pin_self
from bench.runner import Run

PHASES = ("ack", "e2e", "mock", "send", "replicas", "faults", "crashloop", "paired")
# `all`: the replicas phase needs redis-server and haproxy and takes minutes, the fault runs
# (which count replies, not throughput) about 7 minutes, and `paired` compares settings the
# caller names; run them by name.
ALL_PHASES = ("ack", "e2e", "mock", "send")
NOISY_PRESSURE = 0.05


def _phase(name: str) -> Callable[[Run], Any]:
    # Imported lazily so `python -m bench ack` works while other parts are still missing.
    if name == "ack":
        from bench.ack import run_ack

        return run_ack
    if name == "e2e":
        from bench.e2e import run_e2e

        return run_e2e
    if name == "mock":
        from bench.mock_bench import run_mock

        return run_mock
    if name == "replicas":
        from bench.replicas import run_replicas

        return run_replicas
    if name == "paired":
        from bench.paired import run_paired

        return run_paired
    if name in ("faults", "crashloop"):
        from bench.faults import run_crashloop, run_faults

        return run_faults if name == "faults" else run_crashloop
    from bench.send_paths import run_send

    return run_send


def _machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpus": cpu_count(), "cpu_model": model, "python": platform.python_version()}


def _variant(text: str) -> str:
    from bench.paired import parse_variant

    try:
        parse_variant(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("phase", nargs="?", default="all", choices=(*PHASES, "all"))
    parser.add_argument("--seconds", type=float, default=6.0, help="length of one measurement")
    parser.add_argument("--probe-rate", type=float, default=4000.0, help="e2e overload rate")
    parser.add_argument("--stub-latency-ms", type=float, default=0.0, help="Send API stub delay")
    parser.add_argument(
        "--outage-seconds", type=float, default=120.0, help="faults: Send API outage length"
    )
    parser.add_argument("--seed", type=int, help="faults, crashloop: replay a run's kill moments")
    parser.add_argument(
        "--fault-runs",
        type=lambda value: tuple(value.split(",")),
        default=(),
        help="faults: a comma-separated subset of outage,crashes,unencodable,crashloop",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        type=_variant,
        help="paired: bot settings NAME=VALUE[,NAME=VALUE...] (repeat; '' for the defaults)",
    )
    parser.add_argument("--rate", type=float, default=1600.0, help="paired: events/s offered")
    parser.add_argument(
        "--repeats", type=int, default=4, help="paired, ack: turns of every variant or receiver"
    )
    parser.add_argument("--keep", action="store_true", help="keep the run folder (logs, inboxes)")
    parser.add_argument("--out", type=Path, default=Path("reports/bench/latest.json"))
    args = parser.parse_args(argv)

    if cpu_count() < 2:
        print("warning: one CPU: receiver and load share it, ratios only", file=sys.stderr)
    pin_self(LOAD_CPU)
    run_dir = Path(tempfile.mkdtemp(prefix="bench-"))
    run = Run(
        dir=run_dir,
        seconds=args.seconds,
        probe_rate=args.probe_rate,
        stub_latency_ms=args.stub_latency_ms,
        outage_seconds=args.outage_seconds,
        seed=args.seed,
        fault_runs=args.fault_runs,
        paired_rate=args.rate,
        variants=tuple(args.variant),
        repeats=max(1, args.repeats),
    )
    phases = ALL_PHASES if args.phase == "all" else (args.phase,)
    machine = _machine()
    started = time.time()
    print(
        f"# bench {time.strftime('%Y-%m-%d %H:%M')} — {machine['cpus']} CPUs "
        f"({machine['cpu_model']}), Python {machine['python']}; logs in {run_dir}",
        flush=True,
    )
    failed: list[str] = []
    try:
        for name in phases:
            try:
                _phase(name)(run)
            except (BenchError, ImportError, OSError) as exc:
                failed.append(name)
                print(f"\n{name}: could not run: {exc}", flush=True)
            pressure = cpu_pressure()
            run.results.setdefault("cpu_pressure", {})[name] = pressure
            if pressure is not None and pressure > NOISY_PRESSURE:
                print(
                    f"warning: CPU pressure {pressure:.0%} at the end of {name}: other processes "
                    "competed for the cores; trust the ratios more than the absolute numbers",
                    flush=True,
                )
    finally:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        report = {"date": time.strftime("%Y-%m-%dT%H:%M:%S"), "machine": machine, **run.results}
        args.out.write_text(json.dumps(report, indent=2, default=str))
        if not args.keep and not failed:
            shutil.rmtree(run_dir, ignore_errors=True)
    print(
        f"\n{len(phases) - len(failed)}/{len(phases)} phases ran in {time.time() - started:.0f}s; "
        f"numbers in {args.out}",
        flush=True,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
