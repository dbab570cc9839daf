"""The front end of the next clips in worker threads, while the encoder runs the current batch.

Decoding (libsndfile), resampling (soxr), the FFTs and the mel product (numpy, scipy) release the GIL,
so worker threads overlap them with the encoder's convolutions. The caller still consumes every clip's
patches in input order, so batches are composed exactly as without workers and the embeddings are
bit-identical. Memory stays bounded: the workers hold at most `max_patches` patches ahead of the caller
(plus one chunk of the clip being consumed), however long the files are.
"""
from __future__ import annotations

import collections
import concurrent.futures
import os
import threading
from typing import Callable, Iterable, Iterator


def default_workers(device_type: str = "cpu", precision: str = "fp32") -> int:
    """Front-end threads: on CPU the encoder already uses the cores, and two threads beside it hide most of
    the front end (2 cores, 100 ten-second files: the onnx CLI 1.16 s against 1.27 s with one, torch in process
    1.09 against 1.13 s); a GPU encoder is fast, so the front end gets the CPU cores. So does the int8 encoder,
    a fifth of the front end's time (the CLI 0.83 s with 2 threads, 0.94 s with 1; training/EXPERIMENTS.md)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if device_type == "cpu" and precision == "int8":
        return max(1, min(8, cpus))
    if device_type == "cpu":
        return min(2, cpus)
    return max(1, min(8, cpus - 1))


class _Stream:
    """The chunks of one clip: filled by a worker, drained in order by the caller."""

    def __init__(self, make_patches: Callable[[], Iterator]):
        self.make_patches = make_patches
        self.chunks: collections.deque = collections.deque()
        self.done = False
        self.abandoned = False
        self.error: BaseException | None = None


class _Prefetcher:
    def __init__(self, num_workers: int, max_patches: int):
        self.cond = threading.Condition()
        self.max_patches = max_patches
        self.buffered = 0  # patches in all streams' chunks
        self.head: _Stream | None = None  # the stream the caller is consuming
        self.stopped = False
        self.pool = concurrent.futures.ThreadPoolExecutor(num_workers, thread_name_prefix="coala-frontend")

    def produce(self, s: _Stream):
        error = None
        try:
            for chunk in s.make_patches():
                n = len(chunk[0])
                with self.cond:
                    # the head may always hold one chunk, so the caller never waits on a full budget
                    self.cond.wait_for(lambda: self.stopped or s.abandoned or self.buffered + n <= self.max_patches
                                       or (s is self.head and not s.chunks))
                    if self.stopped or s.abandoned:
                        return
                    s.chunks.append(chunk)
                    self.buffered += n
                    self.cond.notify_all()
        except BaseException as e:  # re-raised in the caller's thread, where the clip is consumed
            error = e
        with self.cond:
            s.done, s.error = True, error
            self.cond.notify_all()

    def consume(self, s: _Stream) -> Iterator:
        try:
            with self.cond:
                self.head = s
                self.cond.notify_all()
            while True:
                with self.cond:
                    self.cond.wait_for(lambda: s.chunks or s.done)
                    if not s.chunks:
                        if s.error is not None:
                            raise s.error
                        return
                    chunk = s.chunks.popleft()
                    self.buffered -= len(chunk[0])
                    self.cond.notify_all()
                yield chunk
        finally:  # also when the caller stops early: free the budget, stop the worker
            with self.cond:
                s.abandoned = True
                self.buffered -= sum(len(c[0]) for c in s.chunks)
                s.chunks.clear()
                self.cond.notify_all()

    def stop(self):
        with self.cond:
            self.stopped = True
            self.cond.notify_all()
        self.pool.shutdown(wait=True, cancel_futures=True)


def _lazy(make_patches):
    yield from make_patches()


def prefetch(jobs: Iterable[tuple[object, Callable[[], Iterator]]], num_workers: int,
             max_patches: int) -> Iterator[tuple[object, Iterator]]:
    """(key, make_patches) pairs -> (key, iterator of that clip's (patches, times) chunks), in input order.

    With num_workers=0 each clip is computed when its iterator is read (no threads). Otherwise workers
    compute the next clips ahead; an exception raised while computing a clip is raised by its iterator,
    at the point where it happened, in the caller's thread. Up to max_patches patches are held ahead.
    Read each iterator to its end (or drop it) before taking the next pair.
    """
    if num_workers < 0:
        raise ValueError(f"num_workers must be >= 0, got {num_workers}")
    if num_workers == 0:
        for key, make_patches in jobs:
            yield key, _lazy(make_patches)
        return
    p = _Prefetcher(num_workers, max_patches)
    started: collections.deque = collections.deque()
    jobs = iter(jobs)
    exhausted = False
    try:
        while True:
            # start clips ahead: a started clip holds no memory until a worker reaches it, and each
            # clip has at least one patch, so more than max_patches clips ahead could not be held anyway
            while not exhausted and len(started) <= max_patches:
                try:
                    key, make_patches = next(jobs)
                except StopIteration:
                    exhausted = True
                    break
                s = _Stream(make_patches)
                started.append((key, s))
                p.pool.submit(p.produce, s)
            if not started:
                return
            key, s = started.popleft()
            yield key, p.consume(s)
    finally:
        p.stop()
