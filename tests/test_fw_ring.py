"""The voice -> callback ring: order, wrap-around, underflow accounting, threads."""
import threading
import time
import tracemalloc

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from neurorave.firmware.ring import AudioRing


def test_reads_back_what_was_written_across_the_wrap():
    ring = AudioRing(10)
    out = np.empty(4, dtype=np.float32)
    assert ring.write(np.arange(8, dtype=np.float32)) == 8
    assert ring.read_into(out) == 4 and out.tolist() == [0, 1, 2, 3]
    assert ring.write(np.arange(8, 14, dtype=np.float32)) == 6  # wraps around the end
    got = np.empty(10, dtype=np.float32)
    assert ring.read_into(got) == 10
    assert got.tolist() == list(range(4, 14))
    assert ring.underflows == 0


def test_a_full_ring_takes_only_what_fits():
    ring = AudioRing(5)
    assert ring.write(np.ones(8, dtype=np.float32)) == 5
    assert ring.free() == 0 and ring.write(np.ones(1, dtype=np.float32)) == 0


def test_short_read_fills_silence_and_counts_one_underflow():
    ring = AudioRing(16)
    ring.write(np.full(3, 0.5, dtype=np.float32))
    out = np.full(8, 9.0, dtype=np.float32)
    assert ring.read_into(out) == 3
    assert out.tolist() == [0.5] * 3 + [0.0] * 5
    assert ring.underflows == 1 and ring.samples_missing == 5
    ring.read_into(out)
    assert ring.underflows == 2 and ring.samples_missing == 13 and not out.any()


def test_reads_into_a_strided_column_of_a_device_buffer():
    ring = AudioRing(8)
    ring.write(np.arange(1, 5, dtype=np.float32))
    device_buffer = np.zeros((4, 2), dtype=np.float32)
    ring.read_into(device_buffer[:, 0])
    assert device_buffer[:, 0].tolist() == [1, 2, 3, 4] and not device_buffer[:, 1].any()


def test_read_side_allocates_nothing_per_call():
    ring = AudioRing(4096)
    out = np.empty(256, dtype=np.float32)
    block = np.ones(256, dtype=np.float32)
    for _ in range(20):  # warm up
        ring.write(block)
        ring.read_into(out)
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for _ in range(500):
        ring.write(block)
        ring.read_into(out)
        ring.read_into(out)  # underflow path too
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename")
                if "ring.py" in str(s.traceback))
    assert grown < 1024, f"ring grew {grown} bytes over 1000 reads"


@settings(max_examples=60, deadline=None)
@given(capacity=st.integers(1, 64),
       ops=st.lists(st.tuples(st.booleans(), st.integers(0, 80)), max_size=60))
def test_model_of_a_fifo_with_silence(capacity, ops):
    ring = AudioRing(capacity)
    model = []
    counter = 0.0
    for is_write, n in ops:
        if is_write:
            block = np.arange(counter, counter + n, dtype=np.float32)
            counter += n
            taken = ring.write(block)
            assert taken == min(n, capacity - len(model))
            model.extend(block[:taken].tolist())
        else:
            out = np.full(n, -1.0, dtype=np.float32)
            got = ring.read_into(out)
            expect = model[:n]
            del model[:n]
            assert got == len(expect)
            assert out.tolist() == expect + [0.0] * (n - len(expect))
        assert ring.available() == len(model)


def test_threaded_producer_and_consumer_keep_order():
    ring = AudioRing(1000)
    total = 200_000
    received = np.empty(total, dtype=np.float32)
    done = threading.Event()

    def produce():
        sent = 0
        while sent < total:
            n = min(333, total - sent)
            taken = ring.write(np.arange(sent, sent + n, dtype=np.float32))
            sent += taken
            if taken < n:
                time.sleep(0.0001)
        done.set()

    def consume():
        got = 0
        block = np.empty(256, dtype=np.float32)
        while got < total:
            n = ring.read_into(block, min(256, total - got))
            received[got:got + n] = block[:n]
            got += n
            if n == 0:
                time.sleep(0.0001)

    threads = [threading.Thread(target=produce), threading.Thread(target=consume)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert done.is_set()
    # Every sample arrived once, in order, with nothing torn (float32 holds these exactly).
    assert np.array_equal(received, np.arange(total, dtype=np.float32))
    assert ring.total_read == total == ring.total_written
