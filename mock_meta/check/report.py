"""The report card of a ``mock-meta check`` run: a terminal table, JUnit XML and Markdown.

Pure formatting. A failed check carries what to fix and the platform fact it rests on (a
section of the Messenger reference), so the report alone tells a team what to change.

>>> card = ReportCard("http://127.0.0.1:8000/webhook", [
...     CheckResult("handshake", "Verification handshake", Status.PASSED, "challenge echoed"),
... ])
>>> card.ok, card.counts()
(True, {'passed': 1, 'failed': 0, 'skipped': 0})
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from enum import StrEnum


class Status(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class CheckResult:
    """One check's verdict; ``fix`` and ``fact`` are filled for failures."""

    id: str
    title: str
    status: Status
    detail: str
    fix: str = ""
    fact: str = ""
    seconds: float = 0.0


@dataclass
class ReportCard:
    callback_url: str
    results: list[CheckResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.status is not Status.FAILED for r in self.results)

    def counts(self) -> dict[str, int]:
        return {s.value: sum(r.status is s for r in self.results) for s in Status}

    def result(self, check_id: str) -> CheckResult:
        return next(r for r in self.results if r.id == check_id)


_MARKS = {Status.PASSED: "PASS", Status.FAILED: "FAIL", Status.SKIPPED: "SKIP"}


def format_table(card: ReportCard, *, width: int = 100) -> str:
    """The terminal report: one line per check, then what to fix for each failure."""
    id_width = max((len(r.id) for r in card.results), default=5)
    lines = [f"mock-meta check {card.callback_url}", ""]
    for r in card.results:
        detail = r.detail if len(r.detail) <= width else r.detail[: width - 1] + "…"
        lines.append(f"{_MARKS[r.status]}  {r.id.ljust(id_width)}  {detail}")
    failed = [r for r in card.results if r.status is Status.FAILED]
    if failed:
        lines += ["", "What to fix:"]
        for r in failed:
            lines += [f"- {r.id}: {r.fix}", f"  Platform fact: {r.fact}"]
    c = card.counts()
    lines += ["", f"{c['passed']} passed, {c['failed']} failed, {c['skipped']} skipped"]
    return "\n".join(lines)


def format_markdown(card: ReportCard) -> str:
    """A Markdown report card for CI artefacts and pull-request comments."""
    lines = [
        f"# Messenger bot report card: `{card.callback_url}`",
        "",
        "| result | check | detail |",
        "|---|---|---|",
    ]
    for r in card.results:
        lines.append(f"| {_MARKS[r.status]} | {r.title} | {_cell(r.detail)} |")
    failed = [r for r in card.results if r.status is Status.FAILED]
    if failed:
        lines += ["", "## What to fix", ""]
        for r in failed:
            lines += [f"### {r.title}", "", r.fix, "", f"> Platform fact: {r.fact}", ""]
    c = card.counts()
    lines += ["", f"**{c['passed']} passed, {c['failed']} failed, {c['skipped']} skipped**", ""]
    return "\n".join(lines)


def format_junit(card: ReportCard) -> str:
    """JUnit XML (one testsuite, one testcase per check) for CI test reporters."""
    c = card.counts()
    suite = ET.Element(
        "testsuite",
        name="mock-meta check",
        tests=str(len(card.results)),
        failures=str(c["failed"]),
        skipped=str(c["skipped"]),
        time=f"{sum(r.seconds for r in card.results):.3f}",
    )
    for r in card.results:
        case = ET.SubElement(
            suite, "testcase", classname="mock_meta.check", name=r.id, time=f"{r.seconds:.3f}"
        )
        if r.status is Status.FAILED:
            failure = ET.SubElement(case, "failure", message=r.detail)
            failure.text = f"{r.detail}\n\nFix: {r.fix}\nPlatform fact: {r.fact}"
        elif r.status is Status.SKIPPED:
            ET.SubElement(case, "skipped", message=r.detail)
    ET.indent(suite)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
