"""The built-in notifier: findings to webhooks on any licence, one message per incident.

The daemon hands it every window's results. Per (model, feature, check) it sends
a message when a check starts failing (or gets worse), again only after
``renotify`` while it keeps failing, and a recovery message when it clears.
Delivery runs on a background thread with retries and backoff, so a slow or
failing receiver never holds up analysis.
"""
from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

log = logging.getLogger("predwatch.notifier")
SEVERITY_RANK = {"ok": 0, "warning": 1, "critical": 2, "error": 2}


def slack_escape(text: str) -> str:
    """Slack mrkdwn: escape the control characters and neutralise formatting marks in untrusted text."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for mark in ("*", "_", "~", "`"):
        text = text.replace(mark, "\u200b" + mark)  # a zero-width space stops the mark from formatting
    return text


@dataclass
class Target:
    """A receiver: ``kind`` is ``webhook`` (generic JSON) or ``slack`` (Slack-compatible ``{"text": ...}``)."""

    url: str
    kind: str = "webhook"

    def payload(self, event: dict[str, Any]) -> bytes:
        if self.kind == "slack":
            return json.dumps({"text": slack_text(event)}).encode()
        return json.dumps(event, default=str).encode()


def slack_text(e: dict[str, Any]) -> str:
    icon = {"critical": ":red_circle:", "warning": ":large_orange_circle:", "resolved": ":white_check_mark:"}
    status = "resolved" if e["status"] == "resolved" else e["severity"]
    head = (f"{icon.get(status, '')} *{status.upper()}* {slack_escape(e['model'])} "
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
class Notifier:
    """Deduplicating, retrying webhook notifier. ``observe`` never blocks; ``close`` drains."""

    targets: list[Target]
    renotify: timedelta = timedelta(hours=6)
    attempts: int = 5
    backoff: float = 0.5
    timeout: float = 10.0
    dashboard_url: str | None = None
    state: Any = None  # optional store with load() -> dict and save(dict): open incidents survive restarts
    stats: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._active: dict[tuple[str, str, str, str], _Active] = {}  # (model, feature, check, metric)
        if self.state is not None:
            try:
                for item in (self.state.load() or {}).get("active", []):
                    key = (item["model"], item["feature"], item["check"], item.get("metric") or "")
                    self._active[key] = _Active(item["severity"], item["sent_at"])
            except Exception as exc:  # noqa: BLE001 - a lost memory means one repeated message, not a crash
                log.warning("notifier state not loaded: %s", exc)
        self._queue: queue.Queue[tuple[Target, dict[str, Any]] | None] = queue.Queue()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="predwatch-notifier", daemon=True)
        self._thread.start()

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

    def _save(self) -> None:
        if self.state is None:
            return
        active = [{"model": m, "feature": f, "check": c, "metric": metric, "severity": a.severity, "sent_at": a.sent_at}
                  for (m, f, c, metric), a in self._active.items()]
        try:
            self.state.save({"active": active})
        except Exception as exc:  # noqa: BLE001
            log.warning("notifier state not saved: %s", exc)

    def _event(self, status: str, model: str, version: str | None, window: dict[str, Any], res: Any) -> dict[str, Any]:
        return {"source": "predwatch", "status": status, "model": model, "version": version,
                "feature": res.feature, "check": res.check, "metric": res.metric, "severity": res.status if status == "firing" else "ok",
                "value": res.value, "threshold": res.threshold, "message": res.message, "window": window,
                "examples": res.examples, "segments": res.segments or [],
                "dashboard": self.dashboard_url}

    def _send(self, event: dict[str, Any]) -> None:
        for target in self.targets:
            self._queue.put((target, event))

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            target, event = item
            self._deliver(target, event)
            self._queue.task_done()

    def _deliver(self, target: Target, event: dict[str, Any]) -> None:
        data = target.payload(event)
        for attempt in range(self.attempts):
            try:
                request = urllib.request.Request(target.url, data=data, method="POST",
                                                 headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(request, timeout=self.timeout) as resp:
                    if 200 <= resp.status < 300:
                        self.stats["sent"] += 1
                        return
            except (urllib.error.URLError, OSError) as exc:
                error = exc
            else:
                error = RuntimeError(f"HTTP {resp.status}")
            self.stats["retried"] += 1
            if attempt + 1 < self.attempts:
                time.sleep(self.backoff * 2**attempt)
        self.stats["failed"] += 1
        log.error("notification to %s failed after %d attempts: %s", target.url, self.attempts, error)

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until every queued message was delivered or given up (for tests and shutdown)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.02)
        return not self._queue.unfinished_tasks

    def close(self, timeout: float = 10.0) -> None:
        self.drain(timeout)
        self._queue.put(None)
        self._thread.join(timeout)
