"""Sums up what the crash explorer explored in this run, per backend, in the terminal
summary (the figures the CI log shows)."""

from __future__ import annotations

from collections import defaultdict

import pytest

from flowcoord.testing import ExplorationReport

_TOTALS: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])


def record(report: ExplorationReport) -> None:
    t = _TOTALS[report.backend]
    t[0] += 1
    t[1] += report.cuts
    t[2] += report.second_cuts
    t[3] += report.faults
    t[4] += len(report.violations)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _TOTALS:
        return
    terminalreporter.section("crash explorer")
    for backend, (flows, cuts, second, faults, bad) in sorted(_TOTALS.items()):
        terminalreporter.write_line(
            f"{backend}: {flows} flows, {cuts} cuts, {second} second cuts, {faults} faults; "
            f"{bad} violations"
        )
