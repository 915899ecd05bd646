"""``PredictionLogger``: one structured record per prediction, at a cost the service cannot see.

    from logging_adapter import PredictionLogger, configure

    configure(path="/var/log/checkout/predictions.jsonl")
    plog = PredictionLogger(model="checkout-risk", version="7", service="checkout-api")
    with plog.timed(features) as call:
        call.prediction = model.predict(features)

It writes through the standard ``logging`` module, so ``dictConfig`` decides
where records go. It never raises into the caller: failures are counted in
``.failures`` and reported (rate-limited) on the ``predwatch`` logger.
"""
from __future__ import annotations

import functools
import itertools
import logging
import os
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from .contract import OUTCOME_MESSAGE, PROFILE_MESSAGE
from .formatter import LABELS_ATTR, PAYLOAD_ATTR, SERVICE_ATTR
from .values import MIN_HASH_KEY_BYTES, ArgumentError, Scrubber, as_features, epoch_seconds

DEFAULT_LOGGER = "predwatch.predictions"
HASH_KEY_ENV = "PREDWATCH_HASH_KEY"
_report = logging.getLogger("predwatch")
F = TypeVar("F", bound=Callable[..., Any])


class PredictionLogger:
    """Logs prediction records for one model version.

    Parameters:
        model, version: the model's name and version (``predwatch.model.*``).
        service: ``service.name`` of the serving application.
        logger: any ``logging.Logger``; default ``logging.getLogger("predwatch.predictions")``.
        redact: features dropped before logging (PII that must never leave the process), by path at any
            depth: ``"customer.email"`` is the ``email`` of a ``customer`` object, or of each object in a list.
        hash: features replaced by a keyed SHA-256 (by path, like ``redact``), so they stay joinable but unreadable.
        hash_key: the key for ``hash``, at least 16 bytes; default the ``PREDWATCH_HASH_KEY`` environment variable.
        level: the logging level of prediction records.
        profile: a baseline (a loaded ``Baseline``, the path of its file, or an Elasticsearch client to fetch
            this version's from the baselines index, prefix ``$PREDWATCH_PREFIX``): count every prediction into a
            window profile on the baseline's bins and log one profile record per ``interval`` seconds
            (``analyzers.sources.process``), which the analyzers sum instead of reading raw records.
        sample: with ``profile``, the share of full prediction records still logged, chosen by a hash of
            the ``prediction_id`` (so outcomes of sampled predictions still join); the profile counts all.
        interval: seconds per profile record.
    """

    def __init__(
        self,
        model: str,
        version: str | int | None = None,
        service: str | None = None,
        *,
        logger: logging.Logger | None = None,
        redact: Iterable[str] = (),
        hash: Iterable[str] = (),  # noqa: A002 - the documented option name
        hash_key: str | bytes | None = None,
        level: int = logging.INFO,
        profile: Any = None,
        sample: float = 1.0,
        interval: float = 60.0,
    ) -> None:
        self.logger = logger or logging.getLogger(DEFAULT_LOGGER)
        self.service = service
        self.level = level
        self._model = {"name": model} if version is None else {"name": model, "version": str(version)}
        self._redact = frozenset(redact)
        self._hashed = tuple(hash)
        key = hash_key if hash_key is not None else os.environ.get(HASH_KEY_ENV, "")
        if self._hashed and not key:
            raise ValueError(f"hash=[...] needs a key: pass hash_key= or set {HASH_KEY_ENV}")
        self._hash_key = key.encode() if isinstance(key, str) else key
        if self._hashed and len(self._hash_key) < MIN_HASH_KEY_BYTES:
            raise ValueError(f"hash_key is {len(self._hash_key)} bytes: it must be at least {MIN_HASH_KEY_BYTES} "
                             "(a short key is guessed, and every hashed value with it), e.g. "
                             "python -c 'import secrets; print(secrets.token_hex(32))'")
        self._scrub = Scrubber(self._redact, self._hashed, self._hash_key) if self._redact or self._hashed else None
        self.records = 0
        self.outcomes = 0
        self.failures = 0
        self._last_report = 0.0
        self._said: set[str] = set()  # kinds of refused arguments already reported
        self._template = dict(self.logger.makeRecord(self.logger.name, level, "", 0, "prediction", None, None).__dict__)
        if not 0.0 <= sample <= 1.0:
            raise ValueError(f"sample= is a share of records between 0 and 1, not {sample!r}")
        if sample < 1.0 and profile is None:
            raise ValueError("sample= needs profile=: without a profile the records left out would not be counted")
        self.sample = sample
        self._sample_below = int(sample * 2**32)
        self._profiler = None
        if profile is not None:
            from analyzers.core.baseline import Baseline
            from analyzers.sources.process import ProcessProfiler

            if isinstance(profile, Baseline):
                baseline = profile
            elif isinstance(profile, (str, os.PathLike)):
                baseline = Baseline.load(profile)
            else:  # an Elasticsearch client: this version's baseline from the baselines index
                from analyzers.store.baselines import load_baseline

                baseline = load_baseline(profile, model, self._model.get("version"),
                                         os.environ.get("PREDWATCH_PREFIX", "predwatch"))
                if baseline is None:
                    raise ValueError(f"no baseline of {model!r} version {version!r} in the baselines index: "
                                     "run `predwatch baseline --es ...` first")
            if baseline.model != model:
                raise ValueError(f"profile= is the baseline of {baseline.model!r}, not of {model!r}")
            self._profiler = ProcessProfiler(baseline, self._log_profile, model=self._model, interval=interval)

    def log(
        self,
        features: Mapping[str, Any],
        prediction: Any,
        *,
        prediction_id: str | None = None,
        latency_ms: float | None = None,
        timestamp: Any = None,
        shadow: bool = False,
        **labels: Any,
    ) -> str | None:
        """Log one prediction; returns its ``prediction_id`` (``None`` if logging failed).

        ``features``: a mapping of names to values (a dict, a pandas ``Series``, a numpy record).
        ``timestamp`` replaces "now" when replaying or backfilling past predictions: a ``datetime``
        (aware, or naive meaning UTC) or epoch seconds, milliseconds, microseconds or nanoseconds (told
        apart by size); anything else is refused (the record is not logged, one warning per kind of
        problem). ``labels`` become ECS ``labels.*`` (e.g. ``tenant="eu"``).
        ``shadow=True``: this version scored the request in the shadow of the serving one (its output served no
        one); give the serving record's ``prediction_id`` so that ``predwatch check --compare`` pairs the two.
        """
        try:
            logger = self.logger
            if not logger.isEnabledFor(self.level):
                return None
            if type(features) is not dict:
                features = as_features(features)
            if timestamp is not None:
                timestamp = epoch_seconds(timestamp)
            if self._scrub is not None:
                features = self._scrub(features)
            pid = prediction_id or new_prediction_id()
            if self._profiler is not None:
                if timestamp is None:
                    timestamp = time.time()
                self._profiler.add(timestamp, pid, features, prediction, latency_ms)
                if self._sample_below < 4294967296 and zlib.crc32(pid.encode()) >= self._sample_below:
                    self.records += 1
                    return pid  # counted in the profile, not logged in full
            payload = {"model": self._model, "prediction_id": pid, "features": features, "prediction": prediction}
            if latency_ms is not None:
                payload["latency_ms"] = latency_ms
            if shadow:
                payload["shadow"] = True
            record = self._record(timestamp)
            attrs = record.__dict__
            attrs[PAYLOAD_ATTR] = payload
            if self.service:
                attrs[SERVICE_ATTR] = self.service
            if labels:
                attrs[LABELS_ATTR] = labels
            logger.handle(record)
            self.records += 1
            return pid
        except ArgumentError as exc:
            self._refused(exc)
            return None
        except Exception as exc:  # noqa: BLE001 - logging must never break the model service
            self._failed(exc)
            return None

    def log_outcome(self, prediction_id: str, actual: Any, *, timestamp: Any = None,
                    score: Any = None, predicted_at: Any = None) -> bool:
        """Log the actual outcome of an earlier prediction, when it becomes known (a label, a chargeback,
        an arrival); ``timestamp`` is when it became known, default now (accepted types as in :meth:`log`,
        also for ``predicted_at``). Goes through the
        same logging path as predictions; the analyzers join it to its prediction by ``prediction_id``.
        Returns whether it was logged (never raises).

        With ``profile=`` and ``sample=``, the outcome of a prediction whose full record was left out has
        nothing to join: given the model's output (``score``, as logged) and the prediction's time
        (``predicted_at``), it is counted into that interval's profile record instead."""
        try:
            if timestamp is not None:
                timestamp = epoch_seconds(timestamp)
            if predicted_at is not None:
                predicted_at = epoch_seconds(predicted_at, "predicted_at")
            if (self._profiler is not None and not self.sampled(prediction_id) and score is not None
                    and predicted_at is not None):
                self._profiler.add_outcome(predicted_at, score, actual, time.time() if timestamp is None else timestamp)
                self.outcomes += 1
                return True
            if not self.logger.isEnabledFor(self.level):
                return False
            self._handle(timestamp, OUTCOME_MESSAGE,
                         {"model": self._model, "prediction_id": str(prediction_id), "actual": actual})
            self.outcomes += 1
            return True
        except ArgumentError as exc:
            self._refused(exc)
            return False
        except Exception as exc:  # noqa: BLE001 - logging must never break the model service
            self._failed(exc)
            return False

    def sampled(self, prediction_id: str) -> bool:
        """Whether the full record of this prediction is logged (always, without ``sample=``)."""
        return self._sample_below >= 4294967296 or zlib.crc32(str(prediction_id).encode()) < self._sample_below

    def _log_profile(self, payload: dict[str, Any], created: float) -> None:
        """A profile record down the same logging path (called from the profiler's thread)."""
        try:
            self._handle(created, PROFILE_MESSAGE, payload)
        except Exception as exc:  # noqa: BLE001
            self._failed(exc)

    def _handle(self, timestamp: float | None, message: str, payload: dict[str, Any]) -> None:
        """An outcome or profile record through the logger (predictions take their own, faster path)."""
        record = self._record(timestamp)
        record.msg = message
        record.__dict__[PAYLOAD_ATTR] = payload
        if self.service:
            record.__dict__[SERVICE_ATTR] = self.service
        self.logger.handle(record)

    def flush(self) -> None:
        """With ``profile=``: count what is queued and log every interval's profile record now."""
        if self._profiler is not None:
            self._profiler.flush()

    def close(self) -> None:
        """With ``profile=``: log the last, partial interval (also done at interpreter exit)."""
        if self._profiler is not None:
            self._profiler.close()

    def _record(self, timestamp: float | None = None) -> logging.LogRecord:
        """A LogRecord like ``makeRecord`` gives, without re-deriving the constant attributes.

        ``Logger.info`` spends most of its time in ``findCaller`` and ``LogRecord.__init__``
        working out things that never change for prediction records (caller, process name).
        """
        record = _new_record(logging.LogRecord)
        attrs = record.__dict__
        attrs.update(self._template)
        now = time.time() if timestamp is None else timestamp
        attrs["created"] = now
        attrs["msecs"] = (now - int(now)) * 1000.0
        attrs["relativeCreated"] = (now - _START) * 1000.0
        attrs["thread"] = threading.get_ident()
        attrs["threadName"] = threading.current_thread().name
        attrs["process"] = os.getpid()
        return record

    def _refused(self, exc: ArgumentError) -> None:
        """A call whose arguments cannot be logged: counted in ``failures``, said once per kind of problem
        (not drowned in the once-a-minute report of other failures)."""
        self.failures += 1
        if exc.kind not in self._said:
            self._said.add(exc.kind)
            try:
                _report.warning("predwatch: record of %s not logged: %s", self._model["name"], exc)
            except Exception:  # noqa: BLE001
                pass

    def _failed(self, exc: BaseException) -> None:
        self.failures += 1
        now = time.monotonic()
        if now - self._last_report >= 60.0 or self.failures == 1:
            self._last_report = now
            try:
                _report.warning("predwatch: prediction record not logged (%d failures so far): %r", self.failures, exc)
            except Exception:  # noqa: BLE001
                pass

    def timed(self, features: Mapping[str, Any], **kwargs: Any) -> "TimedPrediction":
        """Context manager measuring ``latency_ms``; set ``.prediction`` inside the block.

        The record is logged when the block ends without an exception.
        """
        return TimedPrediction(self, features, kwargs)

    def wrap(self, fn: F) -> F:
        """Decorator for ``predict(features, ...) -> prediction``: logs each call with its latency."""

        @functools.wraps(fn)
        def wrapper(features: Mapping[str, Any], *args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            prediction = fn(features, *args, **kwargs)
            self.log(features, prediction, latency_ms=(time.perf_counter() - start) * 1000.0)
            return prediction

        return wrapper  # type: ignore[return-value]


_new_record = object.__new__
_START = logging._startTime  # type: ignore[attr-defined]  # what LogRecord measures relativeCreated from


class _IdSource:
    """UUID-shaped prediction IDs: 80 random bits per process and a 48-bit sequence.

    As unique as ``uuid4`` for our purpose (deterministic document IDs) at a tenth of
    the cost; reseeded in a forked child so pre-fork servers never share IDs.
    """

    def __init__(self) -> None:
        self.reseed()
        os.register_at_fork(after_in_child=self.reseed)

    def reseed(self) -> None:
        h = os.urandom(10).hex()
        variant = 8 | (int(h[16], 16) & 3)  # RFC 4122 variant bits
        self._prefix = f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant:x}{h[17:20]}-"
        self._counter = itertools.count(int.from_bytes(os.urandom(3), "big") << 24)

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._counter) & 0xFFFFFFFFFFFF:012x}"


new_prediction_id = _IdSource()


class TimedPrediction:
    """The block of one prediction; see :meth:`PredictionLogger.timed`."""

    __slots__ = ("_plog", "features", "prediction", "_kwargs", "_start", "prediction_id")

    def __init__(self, plog: PredictionLogger, features: Mapping[str, Any], kwargs: dict[str, Any]) -> None:
        self._plog = plog
        self.features = features
        self.prediction: Any = None
        self._kwargs = kwargs
        self._start = 0.0
        self.prediction_id: str | None = None

    def __enter__(self) -> "TimedPrediction":
        self._start = time.perf_counter()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            latency = (time.perf_counter() - self._start) * 1000.0
            self.prediction_id = self._plog.log(self.features, self.prediction, latency_ms=latency, **self._kwargs)
