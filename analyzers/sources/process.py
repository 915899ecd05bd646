"""Window profiles built inside the serving process: every prediction counted, one small record per interval.

At 10,000 predictions a second, one document per prediction is a terabyte a day. A
:class:`ProcessProfiler` counts every prediction into the same mergeable
:class:`~analyzers.core.profile.WindowProfile` the analyzers build from files or
aggregations (same baseline bins, categories, nulls, tokens, offending segments, score
bins), and hands one profile record per model version and interval to ``emit``, which
sends it down the ordinary logging path (file, ``ship``, the Elasticsearch handler).

The caller's thread only appends to a queue; a background thread profiles in batches
(vectorised, as for files) and emits an interval once a record of a later interval
arrives (the records' own time: a replay makes the same intervals as the live
traffic), or once no record came for an interval's length, and at ``close()``. A
record that arrives for an interval already sent goes into a later ``part`` of it:
parts are summed, and each has its own deterministic id (process, interval, part),
so a retried record is a duplicate and two replicas or a restart add up.
"""
from __future__ import annotations

import atexit
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

from logging_adapter import contract as c

from ..core.baseline import Baseline
from ..core.counting import Columns, ProfileCounter, scored_outputs
from ..core.profile import WindowProfile
from ..core.quality import QualityProfile, add_labelled

BATCH = 2000  # predictions profiled together on the background thread
MAX_QUEUED = 200_000  # past this the caller's thread profiles too (memory stays bounded, nothing is dropped)
FLUSH_SECONDS = 1.0


class ProcessProfiler:
    """Counts predictions into per-interval window profiles and emits each as a profile record.

    Parameters:
        baseline: the model version's baseline (its bins and categories are the profile's).
        emit: called with the payload of a profile record (``predwatch`` namespace) and its time (epoch s).
        interval: seconds per profile record (default a minute).
    """

    def __init__(self, baseline: Baseline, emit: Callable[[dict[str, Any], float], None], *, model: dict[str, Any],
                 interval: float = 60.0) -> None:
        self.baseline = baseline
        self.interval = float(interval)
        self.model = model
        self.process = uuid.uuid4().hex[:16]  # this process's profile records never collide with another's
        self.emitted = 0  # profile records handed to ``emit``
        self.counted = 0  # predictions counted
        self._emit = emit
        self._counter = ProfileCounter(baseline, sampling=False)
        self._queue: deque[tuple[float, str | None, Any, Any, float | None]] = deque()
        self._intervals: dict[float, WindowProfile] = {}
        self._parts: dict[float, int] = {}
        self._latest = -math.inf  # the latest record time counted
        self._last_record = time.monotonic()
        self._work = threading.Lock()  # profiling state: one batch at a time
        self._wake = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="predwatch-profiler", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    # -- the caller's thread -------------------------------------------------------------------
    def add(self, timestamp: float, prediction_id: str | None, features: Any, prediction: Any,
            latency_ms: float | None) -> None:
        queue = self._queue
        queue.append((timestamp, prediction_id, features, prediction, latency_ms))
        if len(queue) >= BATCH:
            self._wake.set()
            if len(queue) >= MAX_QUEUED:
                self._drain()

    def add_outcome(self, predicted_at: float, output: Any, actual: Any, known_at: float) -> None:
        """The outcome of a prediction whose full record was not logged (``sample=``), counted into the
        quality of its prediction's interval: the score and the prediction's time come from the caller."""
        ref = self.baseline.quality
        if ref is None:
            return
        key = predicted_at // self.interval * self.interval
        with self._work:
            window = self._intervals.get(key)
            if window is None:
                window = self._intervals[key] = WindowProfile(model=self.model.get("name"))
            window.quality = window.quality or QualityProfile()
            add_labelled(window.quality, ref, [output], [actual], [max(0.0, known_at - predicted_at)])

    # -- the background thread -----------------------------------------------------------------
    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(FLUSH_SECONDS)
            self._wake.clear()
            try:
                self._drain()
                self._emit_due(idle=time.monotonic() - self._last_record >= self.interval)
            except Exception:  # noqa: BLE001 - counting must never take the service down
                import logging
                logging.getLogger("predwatch").exception("predwatch: profiling a batch failed")

    def _drain(self) -> None:
        with self._work:
            queue = self._queue
            while queue:
                batch = [queue.popleft() for _ in range(min(len(queue), BATCH))]
                self._count(batch)
                self._last_record = time.monotonic()

    def _count(self, batch: list[tuple]) -> None:
        name, version = self.model.get("name"), self.model.get("version")
        groups: dict[float, list[tuple]] = {}
        size = self.interval
        for row in batch:
            groups.setdefault(row[0] // size * size, []).append(row)
            if row[0] > self._latest:
                self._latest = row[0]
        for key, rows in groups.items():
            stamps, pids, features, predictions, latencies = map(list, zip(*rows))
            records = Columns([c.utc_iso(ts) for ts in stamps], [name] * len(rows), [version] * len(rows), pids,
                              features, predictions, latencies)
            chunk = self._counter.count(records)
            ref = self.baseline.quality
            if ref is not None:  # every prediction's score bin, for the estimate (outcomes join the sample)
                chunk.quality = scored_outputs(ref, records)
            self._intervals[key] = self._intervals[key].merge(chunk) if key in self._intervals else chunk
        self.counted += len(batch)

    def _emit_due(self, idle: bool = False) -> None:
        with self._work:
            for key in sorted(self._intervals):
                if idle or key + self.interval <= self._latest:
                    self._send(key, self._intervals.pop(key))

    def _send(self, key: float, profile: WindowProfile) -> None:
        part = self._parts.get(key, 0)
        self._parts[key] = part + 1
        if len(self._parts) > 10_000:  # remember parts for about a week of minutes
            for old in sorted(self._parts)[:1000]:
                del self._parts[old]
        profile.model = self.model.get("name")
        payload = {"model": self.model,
                   "interval": {"start": c.utc_iso(key), "end": c.utc_iso(key + self.interval)},
                   "source": {"process": self.process, "part": part},
                   "profile": profile.to_dict()}
        self._emit(payload, key)
        self.emitted += 1

    def flush(self) -> None:
        """Profile what is queued and emit every interval, complete or not."""
        self._drain()
        self._emit_due(idle=True)

    def close(self) -> None:
        """Flush and stop (also at interpreter exit)."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        self._thread.join(timeout=5)
        self.flush()
        atexit.unregister(self.close)
