"""``python -m bench paired``: variants are checked before anything starts, turns are scored."""

from __future__ import annotations

import pytest

from bench.__main__ import main
from bench.paired import PairedRun, summarise


def test_a_malformed_variant_is_refused_before_any_process_starts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["paired", "--variant", "OUTBOX_CONCURRENCY"])
    assert stopped.value.code == 2
    assert "a variant is NAME=VALUE" in capsys.readouterr().err


def test_a_turn_is_won_by_its_fastest_variant_and_the_ramp_up_second_is_left_out() -> None:
    turns = [
        # The first second of each run is the generator's ramp-up: 900 would win it for "a".
        [PairedRun("a", (900.0, 100.0), 30.0, 0), PairedRun("b", (10.0, 150.0), 20.0, 0)],
        [PairedRun("a", (10.0, 120.0), 40.0, 2), PairedRun("b", (10.0, 140.0), 25.0, 0)],
        [PairedRun("a", (10.0, 200.0), 35.0, 0), PairedRun("b", (10.0, 160.0), 22.0, 0)],
    ]
    a, b = summarise(turns)
    assert (a["won"], b["won"]) == (1, 2)
    assert (a["mean"], b["mean"]) == (140.0, 150.0)
    assert (a["lowest"], a["highest"], a["ack_p99_ms"], a["refused"]) == (100.0, 200.0, 40.0, 2)
