"""Request batching for `speechrnn serve`: concurrent requests to one model are queued and decoded together.

A `Batcher` owns one Recognizer and one worker thread, the only thread that runs the model. `submit(item)` puts a
request in a bounded queue and waits for its transcript; the worker takes the first waiting request, gathers up to
`max_batch - 1` more, and decodes the gathered inputs in one call of `Recognizer.transcribe_inputs`. It waits for
more, at most `max_wait` seconds, only while requests are on their way (a request thread inside `arriving()`:
receiving the upload, reading the audio or ink) or the batch is smaller than the one before (under steady load,
the clients just answered are sending their next requests); else it starts at once, so a lone client's request
waits for nothing. When the queue is full, `submit` raises `Busy` at once, with the seconds after which to try again
(what serve sends as HTTP 503 with Retry-After). With max_batch 1 requests are decoded one at a time, in arrival
order (what serve did before batching).

Items are model inputs (`Recognizer.load_input`, done by the caller, in its own thread), or `Long(item)` for audio
longer than the recognizer's split_over, which is decoded alone through `Recognizer.transcribe`.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .output import Transcript
    from .recognizer import Recognizer


_EMPTY = object()  # nothing queued


class Busy(Exception):
    """The queue is full; `retry_after` seconds is a fair wait before trying again."""

    def __init__(self, retry_after: int, waiting: int):
        super().__init__(f"the server is busy ({waiting} requests waiting); try again in {retry_after} s")
        self.retry_after = retry_after


@dataclass
class Long:
    """A recording for Recognizer.transcribe (cut at pauses), not for a batch."""

    item: object


@dataclass
class _Job:
    item: object
    done: threading.Event = field(default_factory=threading.Event)
    result: Transcript | None = None
    error: BaseException | None = None


class Batcher:
    def __init__(self, recognizer: Recognizer, max_batch: int = 16, max_wait: float = 0.02, max_queue: int = 64,
                 timestamps: bool = True, name: str = "model"):
        self.recognizer, self.timestamps = recognizer, timestamps
        self.max_batch, self.max_wait = max(1, int(max_batch)), max(0.0, float(max_wait))
        self.queue: queue.Queue[_Job | None] = queue.Queue(max(1, int(max_queue)))
        self.batch_seconds = 0.1  # running mean of a batch's decoding time, for Retry-After
        self.batches = self.decoded = 0  # counts, for tests and logs
        self.largest = 0  # the largest batch decoded
        self.last = 1  # the size of the batch before
        self.coming = 0  # requests on their way (inside arriving())
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name=f"batcher-{name}", daemon=True)
        self.thread.start()

    @contextmanager
    def arriving(self):
        """Around receiving a request and making its input: batches wait for it (up to max_wait). Gives the
        function to queue the input with (submit), which ends the wait."""
        here = [True]  # still on its way

        def submit(item) -> _Job:
            return self.submit(item, here)

        with self.lock:
            self.coming += 1
        try:
            yield submit
        finally:
            with self.lock:
                self.coming -= here[0]
                here[0] = False

    def submit(self, item, here: list[bool] | None = None) -> _Job:
        """Queue `item` (a model input, or Long) for decoding; the job to wait for with result(). Busy (at once)
        when the queue is full. `here`: from arriving(), to end the request's wait in the same step."""
        job = _Job(item)
        with self.lock:  # queued and no longer on its way at once, as _gather sees it
            if here is not None and here[0]:
                self.coming -= 1
                here[0] = False
            try:
                self.queue.put_nowait(job)
            except queue.Full:
                waiting = self.queue.qsize()
                raise Busy(self.retry_after(waiting), waiting) from None
        return job

    def result(self, job: _Job) -> Transcript:
        """Wait for a submitted job: its Transcript, or the exception its decoding raised."""
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.result

    def transcribe(self, item) -> Transcript:
        """submit, then result."""
        return self.result(self.submit(item))

    def retry_after(self, waiting: int) -> int:
        """Whole seconds until the requests waiting now are likely decoded (at least 1)."""
        return max(1, math.ceil(math.ceil(waiting / self.max_batch) * self.batch_seconds))

    def close(self) -> None:
        """Stop the worker after the requests already queued."""
        self.queue.put(None)
        self.thread.join(timeout=30)

    # ------------------------------------------------------------------------------------------ worker

    def _run(self) -> None:
        while True:
            job = self.queue.get()
            if job is None:
                return
            batch, stop = self._gather(job)
            start = time.perf_counter()
            self._decode(batch)
            self.batch_seconds = 0.8 * self.batch_seconds + 0.2 * (time.perf_counter() - start)
            self.batches += 1
            self.decoded += len(batch)
            self.largest = max(self.largest, len(batch))
            if stop:
                return

    def _gather(self, job: _Job) -> tuple[list[_Job], bool]:
        """`job` and those waiting, and those on their way for up to max_wait seconds (at most max_batch): see the
        module's docstring. True when close() was called (stop after this batch)."""
        batch = [job]
        deadline = time.monotonic() + self.max_wait
        while len(batch) < self.max_batch:
            with self.lock:  # what is queued and what is on its way, in one step (see submit)
                try:
                    more = self.queue.get_nowait()
                except queue.Empty:
                    more = _EMPTY
                coming = self.coming
            if more is _EMPTY:
                left = deadline - time.monotonic()
                if left <= 0 or (coming <= 0 and len(batch) >= self.last):
                    break
                try:
                    more = self.queue.get(timeout=min(left, 0.002))
                except queue.Empty:
                    continue
            if more is None:  # close: finish this batch, then stop
                return batch, True
            batch.append(more)
        self.last = len(batch)
        return batch, False

    def _decode(self, batch: list[_Job]) -> None:
        for job in [job for job in batch if isinstance(job.item, Long)]:
            self._finish([job], lambda items: [self.recognizer.transcribe(items[0].item, self.timestamps)])
        short = [job for job in batch if not isinstance(job.item, Long)]
        if short:
            self._finish(short, lambda items: self.recognizer.transcribe_inputs(items, self.timestamps))

    def _finish(self, jobs: list[_Job], decode) -> None:
        """Decode the jobs' items together; when that raises, each alone, so one bad input fails only itself."""
        try:
            results = decode([job.item for job in jobs])
        except Exception as err:  # noqa: BLE001 (handed to the waiting request, which answers and logs it)
            if len(jobs) > 1:
                for job in jobs:
                    self._finish([job], decode)
                return
            jobs[0].error = err
            jobs[0].done.set()
            return
        for job, result in zip(jobs, results):
            job.result = result
            job.done.set()
