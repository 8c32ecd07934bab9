"""The built wheel, installed into a clean venv, as another project would use it.

One test (a venv install is the slow part): build the wheel from a copy of the tree, check
what it ships, install it with pytest alone, then prove that

* an unrelated test suite still passes (the pytest11 plugin loads without pytest-asyncio),
* a test that asks for the async fixtures fails saying what to install,
* ``messenger-harness-demo`` without the ``[load]`` extra names that extra,
* after ``pip install pytest-asyncio`` an outside project's tests drive the mock with the fixtures.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from mock_meta.pytest_plugin import NEEDS_PYTEST_ASYNCIO

pytestmark = [pytest.mark.system, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
_NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "__pycache__", "*.egg-info", "build", "dist", "var", "reports",
    "node_modules", ".*_cache", ".hypothesis",
)  # fmt: skip

PLAIN_TEST = """
def test_unrelated_to_messenger():
    assert 1 + 1 == 2
"""

FIXTURE_TESTS = """
import httpx
import pytest
from mock_meta.settings import MockSettings


@pytest.fixture
def mock_meta_settings():
    return MockSettings(page_name="Outside Page", emit_echoes=False, emit_deliveries=False)


@pytest.mark.asyncio
async def test_graph_sends_land_in_the_journal(mock_meta, mock_meta_server):
    user = await mock_meta.create_user(open_window=True)
    async with httpx.AsyncClient(base_url=mock_meta_server.base_url) as graph:
        me = await graph.get("/v25.0/me", params={"access_token": "test_page_token"})
        await graph.post(
            "/me/messages",
            params={"access_token": "test_page_token"},
            json={"recipient": {"id": user.psid}, "message": {"text": "hello"}},
        )
    assert me.json()["name"] == "Outside Page"
    sends = await mock_meta.journal("sends", psid=user.psid)
    assert [s["request"]["message"] for s in sends] == [{"text": "hello"}]
"""


def _run(
    args: list[str | Path], cwd: Path, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    # No PYTHONPATH or virtualenv leaking in from this test run: the venv must stand alone.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def _project(where: Path, files: dict[str, str]) -> Path:
    where.mkdir()
    for name, text in files.items():
        (where / name).write_text(textwrap.dedent(text))
    return where


def test_the_wheel_installs_cleanly_and_its_plugin_serves_outside_projects(tmp_path: Path) -> None:
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=_NOT_SOURCE)
    _ok(
        _run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", "dist", source],
            tmp_path,
        )
    )
    (wheel,) = (tmp_path / "dist").glob("messenger_harness-*.whl")

    shipped = set(zipfile.ZipFile(wheel).namelist())
    runbooks = {n for n in shipped if n.startswith("dashboards/runbooks/") and n.endswith(".md")}
    assert {"dashboards/runbooks/BotDown.md", "dashboards/runbooks/BotSendApiErrors.md"} <= runbooks
    assert "dashboards/rules/tests/bot.rules.test.yml" in shipped
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in shipped)

    venv = tmp_path / "venv"
    _ok(_run([sys.executable, "-m", "venv", venv], tmp_path))
    python = venv / "bin" / "python"
    _ok(_run([python, "-m", "pip", "install", "-q", wheel, "pytest"], tmp_path))

    plain = _project(tmp_path / "plain", {"test_plain.py": PLAIN_TEST})
    out = _ok(_run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider"], plain))
    assert "1 passed" in out
    fixtures = _ok(_run([python, "-m", "pytest", "--fixtures", "-p", "no:cacheprovider"], plain))
    assert "mock_meta_server" in fixtures, "the pytest11 plugin was not loaded"

    outside = _project(tmp_path / "outside", {"test_bot.py": FIXTURE_TESTS})
    missing = _run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider"], outside)
    assert missing.returncode == 1, missing.stdout[-3000:]
    assert NEEDS_PYTEST_ASYNCIO in missing.stdout

    demo = _run([venv / "bin" / "messenger-harness-demo", "--duration", "1"], tmp_path)
    assert demo.returncode == 2
    assert "pip install 'messenger-harness[load]'" in demo.stderr

    _ok(_run([python, "-m", "pip", "install", "-q", "pytest-asyncio"], tmp_path))
    out = _ok(_run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider"], outside))
    assert "1 passed" in out
