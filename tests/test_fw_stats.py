"""The stats file: percentiles without per-sample allocation, periodic atomic writes."""
import json
import os
import threading
import tracemalloc

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from neurorave.common.errors import UserError
from neurorave.firmware.stats import (
    PercentileWindow,
    Stats,
    StatsWriter,
    check_writable,
    read_stats,
    rss_mb,
)


@given(st.lists(st.floats(0, 1000), min_size=1, max_size=300), st.integers(1, 64))
def test_percentiles_are_those_of_the_last_window(values, size):
    w = PercentileWindow(size)
    for v in values:
        w.add(v)
    recent = np.array(values[-size:])
    assert w.percentile(50) == pytest.approx(np.percentile(recent, 50))
    assert w.percentile(99) == pytest.approx(np.percentile(recent, 99))
    assert w.max == max(values)  # the worst case never scrolls away
    assert w.count == len(values) and w.last == values[-1]


def test_empty_window_reports_nothing():
    assert PercentileWindow(8).summary() == {"count": 0, "p50": None, "p99": None,
                                             "max": None, "last": None}


def test_adding_a_sample_allocates_nothing():
    w = PercentileWindow(1024)
    for i in range(100):
        w.add(float(i))
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for _ in range(5000):
        w.add(0.5)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename")
                if "stats.py" in str(s.traceback))
    assert grown < 1024


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_writer_writes_once_a_second_and_at_close(tmp_path):
    path = str(tmp_path / "stats.json")
    stats = Stats()
    stats.engine, stats.provider = "ort-cpu", "CPUExecutionProvider"
    underflows = [3]
    clock = FakeClock()
    writer = StatsWriter(path, stats, lambda: underflows[0], clock=clock)
    assert writer.tick() is True
    clock.now = 0.5
    assert writer.tick() is False
    for ms in (1.0, 2.0, 3.0, 10.0):
        stats.inference.add(ms)
        stats.block_rendered()
    stats.latency.add(48.0)
    stats.error("i2c: errno 121")
    stats.extra["model"] = "toy"
    clock.now = 1.0
    assert writer.tick() is True
    doc = read_stats(path)
    assert doc["underflows"] == 3 and doc["blocks_rendered"] == 4
    assert doc["inference_ms"]["count"] == 4 and doc["inference_ms"]["max"] == 10.0
    assert doc["inference_ms"]["p50"] == pytest.approx(2.5)
    assert doc["latency_ms"]["last"] == 48.0
    assert doc["engine"] == "ort-cpu" and doc["provider"] == "CPUExecutionProvider"
    assert doc["errors"] == {"count": 1, "last": ["i2c: errno 121"]}
    assert doc["model"] == "toy"
    assert 1 < doc["rss_mb"] < 4096
    underflows[0] = 5
    assert writer.close() and read_stats(path)["underflows"] == 5
    assert writer.writes == 3
    assert os.listdir(tmp_path) == ["stats.json"]  # no temporary files left


def test_a_reader_never_sees_half_a_file(tmp_path):
    path = str(tmp_path / "stats.json")
    stats = Stats()
    for _ in range(2000):
        stats.error("x" * 50)  # a larger document
    writer = StatsWriter(path, stats, period_s=0.0)
    writer.write_now()
    stop = threading.Event()
    bad = []

    def read():
        while not stop.is_set():
            with open(path) as f:
                text = f.read()
            try:
                json.loads(text)
            except ValueError:
                bad.append(len(text))

    reader = threading.Thread(target=read)
    reader.start()
    for _ in range(200):
        writer.tick()
    stop.set()
    reader.join()
    assert bad == []


def test_unwritable_stats_file_is_counted_not_raised(tmp_path):
    stats = Stats()
    writer = StatsWriter(str(tmp_path / "missing-dir" / "stats.json"), stats)
    assert writer.tick() is False and writer.failures == 1
    writer.write_now()
    assert stats.errors_seen == 1  # said once
    assert "stats file" in stats.as_dict()["errors"]["last"][0]


def test_the_stats_path_is_checked_at_start(tmp_path):
    check_writable(str(tmp_path / "stats.json"))
    assert os.listdir(tmp_path) == []   # the probe leaves nothing behind
    with pytest.raises(UserError, match="missing-dir/stats.json: cannot write the stats file "
                                        "there"):
        check_writable(str(tmp_path / "missing-dir" / "stats.json"))
    (tmp_path / "a-file").write_text("")
    with pytest.raises(UserError, match="Not a directory"):
        check_writable(str(tmp_path / "a-file" / "stats.json"))
    with pytest.raises(UserError, match="is a folder"):
        check_writable(str(tmp_path))


def test_rss_is_the_resident_size():
    before = rss_mb()
    block = np.ones(64 * 2**20 // 8)  # 64 MB touched
    assert rss_mb() - before > 50
    del block


def test_errors_keep_the_last_twenty():
    stats = Stats()
    for i in range(30):
        stats.error(f"e{i}")
    doc = stats.as_dict()
    assert doc["errors"]["count"] == 30 and doc["errors"]["last"][0] == "e10"
