"""The built-in notifier: incidents to webhooks on any licence, never one message per window.

The daemon hands it what its incidents did (:meth:`Notifier.incident`): a message
when an incident opens, when it escalates from warning to critical, and when it
closes; an incident that merely goes on says nothing. The state of the analysis
itself (``analysis_error``) is followed per window (:meth:`Notifier.observe`): a
message when it starts failing (or gets worse), again only after ``renotify``
while it keeps failing, and a recovery message when it clears.
Delivery runs on one background thread per receiver, so a slow, failing or
hanging receiver never holds up analysis nor another receiver. A notification
is kept (per receiver, in order, bounded) until it is delivered: after
``attempts`` failed tries it is counted as ``failed`` and tried again with a
backoff capped at ``retry_cap``, so the user's first message of an incident is
never its "resolved".
"""
from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from logging_adapter.elastic import safe_url, url_host

log = logging.getLogger("predwatch.notifier")
SEVERITY_RANK = {"ok": 0, "warning": 1, "critical": 2, "error": 2}
INCIDENT_EVENTS = ("opened", "escalated", "closed")  # what an incident did that is news


def slack_escape(text: str) -> str:
    """Slack mrkdwn: escape the control characters and neutralise formatting marks in untrusted text."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for mark in ("*", "_", "~", "`"):
        text = text.replace(mark, "\u200b" + mark)  # a zero-width space stops the mark from formatting
    return text


@dataclass
class Target:
    """A receiver: ``kind`` is ``webhook`` (generic JSON) or ``slack`` (Slack-compatible ``{"text": ...}``)."""

    url: str = field(repr=False)  # a webhook's path is its secret: never in a repr, a log line or a message
    kind: str = "webhook"

    def payload(self, event: dict[str, Any]) -> bytes:
        if self.kind == "slack":
            return json.dumps({"text": slack_text(event)}).encode()
        return json.dumps(event, default=str).encode()


def slack_text(e: dict[str, Any]) -> str:
    icon = {"critical": ":red_circle:", "warning": ":large_orange_circle:", "resolved": ":white_check_mark:"}
    status = "resolved" if e["status"] == "resolved" else e["severity"]
    said = status.upper() + (f" (incident {e['event']})" if e.get("event") else "")
    head = (f"{icon.get(status, '')} *{said}* {slack_escape(e['model'])} "
            f"v{slack_escape(str(e.get('version') or '-'))}: `{slack_escape(e['check'])}` on "
            f"*{slack_escape(e['feature'])}*")
    body = slack_escape(e.get("message") or "")
    link = f"\n<{e['dashboard']}|Open the dashboard>" if e.get("dashboard") else ""
    return f"{head}\n{body}{link}"


@dataclass
class _Active:
    severity: str
    sent_at: float  # epoch seconds (persisted across restarts)


@dataclass
class _Pending:
    """One notification for one receiver: ``counted`` once it failed a round of ``attempts`` (``failed``)."""

    event: dict[str, Any]
    counted: bool = False


class _Outbox:
    """The notifications of one receiver, oldest first, and the thread that delivers them in that order."""

    def __init__(self, notifier: "Notifier", target: Target) -> None:
        self.notifier = notifier
        self.target = target
        self.items: deque[_Pending] = deque()
        self.cond = threading.Condition()
        self.retry_at = 0.0  # monotonic time of the next try after a failure
        self.failures = 0  # consecutive failed tries of the oldest notification
        self.in_flight = False
        self.closed = False
        self.last_said = float("-inf")
        self.thread = threading.Thread(target=self.run, name=f"predwatch-notifier-{url_host(target.url)}", daemon=True)
        self.thread.start()

    def put(self, event: dict[str, Any]) -> None:
        n = self.notifier
        with self.cond:
            if len(self.items) >= n.max_kept:  # bounded: the oldest not being tried makes room, counted
                dropped = self.items[1] if self.in_flight and len(self.items) > 1 else self.items[0]
                self.items.remove(dropped)
                n._count("dropped", 1)
                n._forget(dropped.event)
                self.say(f"notification queue of {url_host(self.target.url)} full ({n.max_kept:,}): oldest "
                         f"dropped ({n.stats['dropped']:,} so far)")
            self.items.append(_Pending(event))
            self.cond.notify()

    def unsettled(self) -> int:
        """Notifications neither delivered nor through their first round of attempts."""
        with self.cond:
            return sum(not p.counted for p in self.items)

    def say(self, message: str, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last_said >= 60.0:
            self.last_said = now
            log.warning("%s", message)

    def run(self) -> None:
        while True:
            try:
                if not self.step():
                    return
            except Exception as exc:  # noqa: BLE001 - this thread must outlive anything a receiver does
                log.error("notifier to %s: unexpected %s", url_host(self.target.url), type(exc).__name__)
                time.sleep(self.notifier.backoff)

    def step(self) -> bool:
        n = self.notifier
        with self.cond:
            while not self.closed and (not self.items or time.monotonic() < self.retry_at):
                self.cond.wait(max(0.0, self.retry_at - time.monotonic()) if self.items else None)
            if self.closed:
                return False
            pending = self.items[0]
            self.in_flight = True
        error = n._post(self.target, pending.event)
        with self.cond:
            self.in_flight = False
            if error is None:
                if pending in self.items:
                    self.items.remove(pending)
                n._count("sent", 1)
                if self.failures >= n.attempts:
                    log.warning("notifications to %s delivered again (%d kept)", url_host(self.target.url),
                                len(self.items))
                self.failures, self.retry_at = 0, 0.0
                return True
            self.failures += 1
            n._count("retried", 1)
            self.retry_at = time.monotonic() + min(n.retry_cap, n.backoff * 2 ** (self.failures - 1))
            if self.failures >= n.attempts:
                fresh = [p for p in self.items if not p.counted]
                for p in fresh:
                    p.counted = True
                n._count("failed", len(fresh))
                if fresh:
                    self.say(f"notification to {url_host(self.target.url)} failed after {self.failures} attempts: "
                             f"{error}; {len(self.items):,} kept and tried again ({n.stats['failed']:,} failed so far)")
            return True


@dataclass
class Notifier:
    """Webhook notifier of incidents (and of the analysis' own state, deduplicated) that keeps what it could not
    deliver. ``incident`` and ``observe`` never block;
    ``close`` drains. ``stats``: ``sent``, ``retried`` (failed tries), ``failed`` (notifications that failed a
    round of ``attempts`` and are kept), ``dropped`` (kept beyond ``max_kept`` per receiver), ``deduplicated``."""

    targets: list[Target]
    renotify: timedelta = timedelta(hours=6)
    attempts: int = 5
    backoff: float = 0.5
    timeout: float = 10.0
    dashboard_url: str | None = None
    state: Any = None  # optional store with load() -> dict and save(dict): open incidents survive restarts
    stats: Counter[str] = field(default_factory=Counter)
    retry_cap: float = 60.0  # seconds: the longest wait between two tries of a kept notification
    max_kept: int = 1000  # notifications kept per receiver while it cannot be reached

    def __post_init__(self) -> None:
        if self.dashboard_url:  # it goes into every message: never with user:password@
            self.dashboard_url = safe_url(self.dashboard_url)
        self._active: dict[tuple[str, str, str, str], _Active] = {}  # (model, feature, check, metric)
        self._unsaid: list[dict[str, Any]] = []  # incident notifications a receiver did not get before a close
        kept: list[dict[str, Any]] = []
        if self.state is not None:
            try:
                saved = self.state.load() or {}
                for item in saved.get("active", []):
                    key = (item["model"], item["feature"], item["check"], item.get("metric") or "")
                    self._active[key] = _Active(item["severity"], item["sent_at"])
                kept = list(saved.get("undelivered", []))
            except Exception as exc:  # noqa: BLE001 - a lost memory means one repeated message, not a crash
                log.warning("notifier state not loaded: %s", exc)
        self._lock = threading.RLock()
        self._stats_lock = threading.Lock()  # one Counter, updated by every receiver's thread
        self._outboxes = [_Outbox(self, target) for target in self.targets]
        for item in kept:  # an incident's change is said once by the daemon: what a receiver missed is said now
            if 0 <= item.get("receiver", -1) < len(self._outboxes):
                self._outboxes[item["receiver"]].put(item["event"])
        if kept:
            self._save()
    @classmethod
    def from_config(cls, doc: dict[str, Any] | None, *, renotify: timedelta = timedelta(hours=6),
                    dashboard_url: str | None = None, state: Any = None) -> "Notifier | None":
        """``[notify]``: ``webhooks = [...]``, ``slack = [...]``; None when nothing is set.

        ``renotify`` comes parsed: the daemon's configuration reads durations, the notifier takes values.
        """
        doc = doc or {}
        targets = [Target(u, "webhook") for u in doc.get("webhooks", [])] + [Target(u, "slack") for u in doc.get("slack", [])]
        if not targets:
            return None
        return cls(targets, renotify=renotify, dashboard_url=dashboard_url, state=state)

    def observe(self, model: str, version: str | None, window: dict[str, Any], results: list[Any]) -> None:
        """One window's results (``CheckResult`` objects): decide what to say, queue it, return at once."""
        now = time.time()
        changed = False
        with self._lock:
            for res in results:
                key = (model, res.feature, res.check, res.metric or "")
                active = self._active.get(key)
                if res.status == "ok":
                    if active is not None:
                        del self._active[key]
                        changed = True
                        self._send(self._event("resolved", model, version, window, res))
                    continue
                worse = active is not None and SEVERITY_RANK[res.status] > SEVERITY_RANK[active.severity]
                due = active is not None and now - active.sent_at >= self.renotify.total_seconds()
                if active is None or worse or due:
                    self._active[key] = _Active(res.status, now)
                    changed = True
                    self._send(self._event("firing", model, version, window, res))
                else:
                    self.stats["deduplicated"] += 1
            if changed:
                self._save()

    def incident(self, event: str, incident: dict[str, Any]) -> None:
        """What an incident did: ``opened``, ``escalated`` (warning to critical) or ``closed`` (``extended`` is
        not news and says nothing). ``incident``: its fields (``analyzers.store.incidents.incident_fields``). The
        daemon says each change once, when it writes it, so nothing is deduplicated here. Never blocks."""
        if event not in INCIDENT_EVENTS:
            if event == "extended":
                self._count("deduplicated", 1)
                return
            raise ValueError(f"incident event: one of {', '.join(INCIDENT_EVENTS)}, not {event!r}")
        closed = event == "closed"
        message = incident.get("latest_message") if event != "opened" else incident.get("message")
        if closed:
            message = (f"closed after {incident.get('windows')} window(s) with the finding, last seen "
                       f"{incident.get('last_seen')}: {message}")
        self._send({"source": "predwatch", "event": event, "status": "resolved" if closed else "firing",
                    "severity": "ok" if closed else incident.get("peak_severity"),
                    "model": incident.get("model"), "version": incident.get("version"),
                    "feature": incident.get("feature"), "check": incident.get("check"), "metric": None,
                    "reference": incident.get("reference"), "value": incident.get("peak_value"),
                    "message": message, "incident": incident, "dashboard": self.dashboard_url})

    def _save(self) -> None:
        if self.state is None:
            return
        active = [{"model": m, "feature": f, "check": c, "metric": metric, "severity": a.severity, "sent_at": a.sent_at}
                  for (m, f, c, metric), a in self._active.items()]
        saved: dict[str, Any] = {"active": active}
        if self._unsaid:
            saved["undelivered"] = self._unsaid
        try:
            self.state.save(saved)
        except Exception as exc:  # noqa: BLE001
            log.warning("notifier state not saved: %s", exc)

    def _event(self, status: str, model: str, version: str | None, window: dict[str, Any], res: Any) -> dict[str, Any]:
        return {"source": "predwatch", "status": status, "model": model, "version": version,
                "feature": res.feature, "check": res.check, "metric": res.metric, "severity": res.status if status == "firing" else "ok",
                "value": res.value, "threshold": res.threshold, "message": res.message, "window": window,
                "examples": res.examples, "segments": res.segments or [],
                "dashboard": self.dashboard_url}

    def _send(self, event: dict[str, Any]) -> None:
        for outbox in self._outboxes:
            outbox.put(event)

    def _count(self, key: str, n: int = 1) -> None:
        with self._stats_lock:
            self.stats[key] += n

    def _forget(self, event: dict[str, Any]) -> None:
        """A firing notification that will never be delivered: its incident is no longer "said", so the next
        window that still fails says it (rather than deduplicating against a message nobody got)."""
        if event.get("status") != "firing" or event.get("incident"):  # an incident's change is said once anyway
            return
        key = (event["model"], event["feature"], event["check"], event.get("metric") or "")
        with self._lock:
            if self._active.pop(key, None) is not None:
                self._save()

    def _post(self, target: Target, event: dict[str, Any]) -> str | None:
        """One try; None when delivered, else why not (any error at all: a receiver may answer anything)."""
        try:
            request = urllib.request.Request(target.url, data=target.payload(event), method="POST",
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=self.timeout) as resp:
                if 200 <= resp.status < 300:
                    return None
                return f"HTTP {resp.status}"
        except Exception as exc:  # noqa: BLE001 - HTTPError, URLError, timeouts, BadStatusLine, resets, ...
            return f"{type(exc).__name__}: {_without_url(str(exc), target.url)}"

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until every notification was delivered or failed its first round of attempts (and is kept)."""
        deadline = time.monotonic() + timeout
        while any(o.unsettled() for o in self._outboxes) and time.monotonic() < deadline:
            time.sleep(0.02)
        return not any(o.unsettled() for o in self._outboxes)

    def pending(self) -> int:
        """Notifications kept but not delivered yet, over every receiver."""
        return sum(len(o.items) for o in self._outboxes)

    def close(self, timeout: float = 10.0) -> None:
        """Drain, stop the threads, and forget the analysis errors whose firing notification was never delivered
        (saved, so that after a restart they are said again); the incident notifications a receiver did not get
        are saved as they are, and sent to it by the next notifier over the same state."""
        self.drain(timeout)
        undelivered = 0
        for number, outbox in enumerate(self._outboxes):
            with outbox.cond:
                outbox.closed = True
                outbox.cond.notify_all()
                kept = list(outbox.items)
            undelivered += len(kept)
            for pending in kept:
                if pending.event.get("incident"):
                    self._unsaid.append({"receiver": number, "event": pending.event})
                else:
                    self._forget(pending.event)
        if self._unsaid:
            with self._lock:
                self._save()
        for outbox in self._outboxes:
            outbox.thread.join(min(timeout, self.timeout + 1.0))
        if undelivered:
            log.warning("notifier closed with %d notification(s) not delivered: incidents still open will be "
                        "notified again", undelivered)


def _without_url(text: str, url: str) -> str:
    """An error message with the webhook's URL (its path is a secret) reduced to its host."""
    return text.replace(url, url_host(url)) if url else text
