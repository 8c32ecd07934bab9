"""A real Prometheus on loopback for system tests, with a test copy of our rules.

The copy shortens every ``for:`` and every range window so alerts fire and resolve within
seconds; everything else (expressions, labels, annotations) is the production file.
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

_FOR = re.compile(r"^(\s+for:\s*)\S+\s*$", re.MULTILINE)
_RANGE = re.compile(r"\[\d+[smhdw]\]")


def shortened_rules(source: Path, *, for_duration: str, window: str) -> str:
    """The rule file with ``for:`` set to ``for_duration`` and ranges set to ``window``."""
    text = _FOR.sub(lambda m: f"{m.group(1)}{for_duration}", source.read_text())
    return _RANGE.sub(f"[{window}]", text)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrometheusClient:
    """The slice of Prometheus's HTTP API the tests use."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self._http = httpx.Client(base_url=base_url, timeout=10.0, trust_env=False)

    def query(self, promql: str) -> dict[str, Any]:
        response = self._http.get("/api/v1/query", params={"query": promql})
        body: dict[str, Any] = response.json()
        return body

    def alerts(self) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = self._http.get("/api/v1/alerts").json()["data"]["alerts"]
        return alerts

    def targets_up(self) -> dict[str, bool]:
        data = self._http.get("/api/v1/targets").json()["data"]["activeTargets"]
        return {t["labels"]["job"]: t["health"] == "up" for t in data}

    def close(self) -> None:
        self._http.close()


@contextmanager
def running_prometheus(
    binary: str,
    workdir: Path,
    *,
    targets: Mapping[str, str | Sequence[str]],
    rule_files: Sequence[Path],
    scrape_interval: str = "1s",
    ready_timeout: float = 30.0,
) -> Iterator[PrometheusClient]:
    """Start Prometheus scraping ``targets`` (job -> host:port, or a list of them for a job's
    replicas) and stop it afterwards."""
    port = _free_port()
    config = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [
            {
                "job_name": job,
                "static_configs": [
                    {"targets": [address] if isinstance(address, str) else list(address)}
                ],
            }
            for job, address in targets.items()
        ],
    }
    config_path = workdir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config))
    log = (workdir / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--enable-feature=exemplar-storage",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    client = PrometheusClient(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            try:
                if client._http.get("/-/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    "prometheus did not become ready:\n"
                    + (workdir / "prometheus.log").read_text()[-2000:]
                )
            time.sleep(0.1)
        yield client
    finally:
        client.close()
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
