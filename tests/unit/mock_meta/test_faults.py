"""Armed Send API faults: count, probability, PSID filter, clear and seeded replay."""

from __future__ import annotations

import pytest

from mock_meta.faults import FaultBook, FaultSpec


def test_nothing_fails_unless_armed() -> None:
    assert FaultBook().take("1") is None


def test_a_counted_fault_fires_exactly_count_times_then_disappears() -> None:
    book = FaultBook()
    book.arm(FaultSpec(code=2, count=2))
    fired = [book.take("1") for _ in range(3)]
    assert [f is not None for f in fired] == [True, True, False]
    assert book.armed() == []


def test_the_fault_error_carries_code_subcode_and_status() -> None:
    book = FaultBook()
    book.arm(FaultSpec(code=1200, subcode=2018024, http_status=503))
    fault = book.take("1")
    assert fault is not None
    error = fault.error()
    assert error is not None
    assert (error.code, error.subcode, error.http_status) == (1200, 2018024, 503)


def test_a_latency_only_fault_has_no_error() -> None:
    book = FaultBook()
    book.arm(FaultSpec(latency_ms=250))
    fault = book.take(None)
    assert fault is not None and fault.error() is None and fault.spec.latency_ms == 250


def test_psid_filter_leaves_other_users_alone() -> None:
    book = FaultBook()
    book.arm(FaultSpec(code=551, psid="42"))
    assert book.take("7") is None
    assert book.take("42") is not None


def test_same_seed_replays_the_same_probabilistic_faults() -> None:
    def run(seed: int) -> list[bool]:
        book = FaultBook(seed=seed)
        book.arm(FaultSpec(code=2, probability=0.5))
        return [book.take("1") is not None for _ in range(50)]

    assert run(3) == run(3)
    assert 5 < sum(run(3)) < 45


def test_clear_one_or_all() -> None:
    book = FaultBook()
    first = book.arm(FaultSpec(code=2))
    book.arm(FaultSpec(code=4))
    assert book.clear(first.id) == 1
    assert [f.spec.code for f in book.armed()] == [4]
    assert book.clear() == 1 and book.armed() == []


def test_listing_shows_remaining_uses_and_hits() -> None:
    book = FaultBook()
    book.arm(FaultSpec(code=2, count=3))
    book.take("1")
    listed = book.armed()[0].as_dict()
    assert (listed["remaining"], listed["hits"], listed["code"]) == (2, 1, 2)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"probability": 1.5},
        {"count": 0},
        {"latency_ms": -1},
        {"code": 2, "http_status": 200},
        {"subcode": 5},
    ],
)
def test_nonsense_specs_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        FaultSpec(**kwargs)  # type: ignore[arg-type]
