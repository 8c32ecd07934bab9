"""Chaos decisions are reproducible for a seed and follow the configured rates."""

from __future__ import annotations

import pytest

from mock_meta.chaos import Chaos, ChaosConfig, ChaosConfigError

KEYS = [f"dlv_{n}" for n in range(1, 2001)]


def decisions(chaos: Chaos) -> tuple[list[bool], list[bool], list[int]]:
    return (
        [chaos.should_duplicate(k) for k in KEYS],
        [chaos.should_reorder(k) for k in KEYS],
        [chaos.batch_size(k) for k in KEYS],
    )


def config(seed: int | None) -> ChaosConfig:
    return ChaosConfig(
        seed=seed, duplicate_probability=0.3, reorder_probability=0.1, batch_max_entries=4
    )


def test_same_seed_gives_the_same_decisions_in_any_order() -> None:
    first = decisions(Chaos(config(42)))
    chaos = Chaos(config(42))
    # Asked in reverse order (as concurrent deliveries might), the answers per key still match.
    backwards = {k: chaos.should_duplicate(k) for k in reversed(KEYS)}
    assert [backwards[k] for k in KEYS] == first[0]
    assert decisions(chaos) == first


def test_different_seeds_give_different_decisions() -> None:
    assert decisions(Chaos(config(1))) != decisions(Chaos(config(2)))


def test_rates_are_roughly_the_configured_probabilities() -> None:
    dup, reorder, sizes = decisions(Chaos(config(7)))
    assert 0.25 < sum(dup) / len(KEYS) < 0.35
    assert 0.06 < sum(reorder) / len(KEYS) < 0.14
    assert set(sizes) == {1, 2, 3, 4}


def test_default_config_is_calm() -> None:
    chaos = Chaos()
    assert chaos.calm
    assert not any(chaos.should_duplicate(k) or chaos.should_reorder(k) for k in KEYS)
    assert {chaos.batch_size(k) for k in KEYS} == {1}
    assert chaos.signature_mode == "valid"


def test_a_random_seed_is_chosen_and_reported_when_none_is_given() -> None:
    chaos = Chaos(config(None))
    assert isinstance(chaos.config.seed, int)
    replay = Chaos(config(chaos.config.seed))
    assert decisions(replay) == decisions(chaos)


def test_partial_update_keeps_other_values() -> None:
    updated = ChaosConfig.from_dict({"signature": "wrong"}, base=config(3))
    assert updated.signature == "wrong"
    assert updated.duplicate_probability == 0.3


@pytest.mark.parametrize(
    "bad",
    [
        {"duplicate_probability": 1.5},
        {"reorder_probability": "0.1"},
        {"batch_max_entries": 0},
        {"batch_max_entries": 1001},
        {"signature": "forged"},
        {"seed": "abc"},
        {"typo": 1},
    ],
)
def test_bad_values_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ChaosConfigError):
        ChaosConfig.from_dict(bad)
