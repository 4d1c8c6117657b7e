"""The per-second time series: O(1) accumulation, exact merge, the report's timeline."""

from __future__ import annotations

import pytest

from config.schema import Recovery
from recovery.clock import ClockOrigin
from recovery.results import NodeResult, merge_results, result_from_dict, result_to_dict
from recovery.series import Second, TypeSeries, slot, slot_ms, timeline
from recovery.tracker import RequestTrackers


def test_slots_are_ordered_and_about_19_percent_wide() -> None:
    times = [0.001, 0.01, 0.1, 0.5, 1, 2, 10, 100, 1000, 60_000]
    slots = [slot(ms) for ms in times]
    assert slots == sorted(slots) and len(set(slots)) == len(slots)
    for ms in times:
        assert slot_ms(slot(ms)) == pytest.approx(ms, rel=0.2)


def test_series_counts_per_second_and_merges_exactly() -> None:
    a, b = TypeSeries(offset=1000.0), TypeSeries(offset=1000.0)
    a.add(0.2, False, False, 1.0, 0, 0)
    a.add(0.9, True, True, 3.0, 0, 1)
    a.add(1.1, False, True, 80.0, 2, 0)
    b.add(0.5, False, False, 1.0, 0, 0)
    assert set(a.seconds) == {1000, 1001}
    assert a.seconds[1000].counts == [2, 1, 1, 0, 1] and a.seconds[1001].counts == [1, 0, 1, 2, 0]
    left = NodeResult(series={"REDIS": a.seconds}, users={1000: 2, 1001: 2})
    right = NodeResult(series={"REDIS": b.seconds}, users={1000: 1})
    merged = merge_results([result_from_dict(result_to_dict(left)), right], [])
    first = merged.series["REDIS"][1000]
    assert first.counts == [3, 1, 1, 0, 1] and sum(first.latency) == 3
    assert merged.users == {1000: 3, 1001: 2}
    line = timeline(merged.series, merged.users, {1001: 250.0})
    assert line["start"] == 1000 and line["t"] == [0, 1] and line["users"] == [3, 2]
    redis = line["types"]["REDIS"]
    assert redis["requests"] == [3, 1] and redis["failures"] == [1, 0] and redis["hidden_retries"] == [0, 2]
    assert redis["p99_ms"][1] == pytest.approx(80, rel=0.2) and line["witness_outage_ms"] == [0.0, 250.0]
    assert isinstance(first, Second)


def test_the_trackers_keep_a_series_per_type_and_the_users() -> None:
    now = [50.0]
    trackers = RequestTrackers(Recovery(), ("REDIS", "HTTP"), clock=lambda: now[0])
    trackers.on_request("REDIS", 1.0, None, {"user": 1})
    trackers.on_request("HTTP", 2.0, RuntimeError("x"), {"user": 2})
    trackers.on_request("GET", 2.0, None, {})  # not ours: ignored
    trackers.sample_users(7)
    series = trackers.series()
    assert set(series) == {"REDIS", "HTTP"}
    (second,) = series["HTTP"].values()
    assert second.counts[:3] == [1, 1, 1]
    assert list(trackers.users.values()) == [7]


def test_the_series_seconds_come_from_the_tests_one_clock_origin() -> None:
    origin = ClockOrigin(monotonic=100.0, wall=1_000_000.0)  # a test's start: one tie between the two clocks
    now = [100.5]
    trackers = RequestTrackers(Recovery(), ("REDIS",), clock=lambda: now[0], origin=origin)
    trackers.on_request("REDIS", 1.0, None, {"user": 1})
    now[0] = 101.2
    trackers.sample_users(3)
    assert set(trackers.series()["REDIS"]) == {1_000_000} and trackers.users == {1_000_001: 3}
    assert origin.to_monotonic(origin.to_wall(123.25)) == 123.25
