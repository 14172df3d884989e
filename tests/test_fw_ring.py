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


def test_the_silence_after_an_ended_sound_is_no_underflow():
    """A voice that stopped has written its fade-out and ended the sound: the reads
    after it are silence by design. A short read before the end still counts, and a
    write starts the sound again."""
    ring = AudioRing(16)
    out = np.zeros(4, dtype=np.float32)
    ring.write(np.ones(6, dtype=np.float32))
    ring.end()
    assert ring.read_into(out) == 4 and ring.underflows == 0
    assert ring.read_into(out) == 2 and out.tolist() == [1, 1, 0, 0]
    ring.read_into(out)
    assert ring.underflows == 0 and ring.samples_missing == 0
    ring.write(np.ones(2, dtype=np.float32))
    ring.read_into(out)
    assert ring.underflows == 1 and ring.samples_missing == 2


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


def test_a_splice_lands_at_the_next_sample_read_and_never_tears_a_read():
    """A gate's frame replaces the queue from the very next sample the consumer reads:
    every read block holds one splice's samples (or the samples before it), never the
    head of one and the tail of another, while splices and reads race (the GIL
    switching as often as it can)."""
    import sys

    ring = AudioRing(4096)
    ring.write(np.full(1024, -1.0, np.float32))
    assert ring.splice(0, lambda index: None) is None and ring.available() == 1024
    out = np.empty(100, np.float32)
    ring.read_into(out)
    assert ring.splice(0, lambda index: np.arange(index, index + 300, dtype=np.float32)) == 100
    assert ring.available() == 300
    ring.read_into(out)
    assert out[0] == 100 and out[-1] == 199  # the splice, from its first sample
    assert ring.splice(500, lambda index: np.zeros(10, np.float32)) is None  # past the end

    torn, reads, firsts = [], [0], {}
    stop = threading.Event()

    def splice_forever():
        gen = 0
        while not stop.is_set():
            gen = gen % 9000 + 1
            ring.splice(0, lambda index, g=gen: g * 1000.0 + np.arange(512, dtype=np.float32))

    def read_forever():
        block = np.empty(64, np.float32)
        while not stop.is_set():
            n = ring.read_into(block)
            gens = (block[:n] // 1000).astype(int)
            if len(set(gens.tolist()) - {0}) > 1:
                torn.append(block[:n].copy())
            for g, v in zip(gens.tolist(), block[:n].tolist()):
                firsts.setdefault(g, v - g * 1000)  # where each splice was first heard
            reads[0] += 1

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=splice_forever), threading.Thread(target=read_forever)]
        for t in threads:
            t.start()
        # Enough reads to meet many splices, however slow the machine is today.
        deadline = time.monotonic() + 10.0
        while reads[0] <= 2000 and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        for t in threads:
            t.join(10)
    finally:
        sys.setswitchinterval(interval)
    assert reads[0] > 1000 and not torn, torn[:3]
    # Every splice heard was heard from its first sample: none landed behind the reader.
    late = {g: i for g, i in firsts.items() if g > 0 and i != 0}
    assert len(firsts) > 100 and not late, list(late.items())[:5]
