"""The notifier against receivers that misbehave at the socket level: garbage, down, hanging.

Each receiver is a raw TCP server on 127.0.0.1 whose behaviour the test switches, so the port (the
notifier's URL) stays the same when the receiver "comes back". Nothing may be lost: the first message
of an incident arrives before its "resolved", and the notifier's thread survives everything.
"""
from __future__ import annotations

import json
import logging
import socket
import threading

import pytest

from alerting.notifier import Notifier, Target
from analyzers.core.checks import CheckResult
from conftest import free_port, wait_until


class RawReceiver:
    """A TCP server whose answer is set by ``mode``: ``ok`` (HTTP 200), ``garbage`` (a non-HTTP status line),
    ``hang`` (accepts, reads, never answers) or ``down`` (the port is closed)."""

    def __init__(self, mode: str = "ok", port: int | None = None) -> None:
        self.mode = mode
        self.port = port or free_port()
        self.bodies: list[dict] = []
        self.connections = 0
        self._hung: list[socket.socket] = []
        self._sock: socket.socket | None = None
        if mode != "down":
            self.listen()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/services/T000/B000/SECRETPATHxyz"

    def listen(self) -> None:
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", self.port))
        self._sock.listen(16)
        threading.Thread(target=self._accept, args=(self._sock,), daemon=True).start()

    def _accept(self, sock: socket.socket) -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        data = b""
        conn.settimeout(5)
        try:
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(next((line.split(b":")[1] for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), b"0"))
            while len(body) < length:
                body += conn.recv(65536)
        except OSError:
            conn.close()
            return
        if self.mode == "hang":
            self._hung.append(conn)  # never answered, never closed (until the test ends)
            return
        if self.mode == "garbage":
            conn.sendall(b"SSH-2.0-OpenSSH_9.2 not http at all\r\n\r\n")
        else:
            self.bodies.append(json.loads(body))
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        conn.close()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
        for conn in self._hung:
            conn.close()


def result(feature: str, status: str) -> CheckResult:
    return CheckResult(check="oov_rate", feature=feature, role="input", status=status, value=0.3, threshold=0.1,
                       critical_threshold=0.25, p_value=1e-9, adjusted_p_value=1e-9, n_window=1000, n_baseline=5000,
                       observed=0.3, expected=0.0, message=f"{feature}: oov_rate", examples=[])


@pytest.mark.parametrize("fault", ["garbage", "down", "hang"])
def test_nothing_is_lost_while_a_receiver_misbehaves(fault, caplog):
    bad = RawReceiver(fault)
    good = RawReceiver("ok")
    notifier = Notifier([Target(bad.url), Target(good.url)], attempts=2, backoff=0.05, retry_cap=0.2, timeout=0.5)
    try:
        with caplog.at_level(logging.INFO, logger="predwatch"):
            notifier.observe("m", "7", {}, [result("country", "warning")])  # the first window: firing
            assert notifier.drain(10)
            assert notifier.stats["failed"] == 1 and notifier.pending() == 1
            notifier.observe("m", "7", {}, [result("country", "warning")])  # still failing: said once already
            notifier.observe("m", "7", {}, [result("country", "ok")])  # resolved
            assert notifier.drain(10)
            # the other receiver was not held up by this one
            assert [b["status"] for b in good.bodies] == ["firing", "resolved"]
            # the receiver recovers: everything kept arrives, in order, firing first
            if fault == "down":
                bad.listen()
            bad.mode = "ok"
            assert wait_until(lambda: len(bad.bodies) == 2, 10, 0.05), (bad.bodies, notifier.stats)
            assert [b["status"] for b in bad.bodies] == ["firing", "resolved"]
            assert notifier.pending() == 0 and notifier.stats["deduplicated"] == 1
            # the thread is alive: a later incident is delivered at once
            notifier.observe("m", "7", {}, [result("age", "critical")])
            assert wait_until(lambda: len(bad.bodies) == 3, 5, 0.05)
        logged = caplog.text
        assert "failed after 2 attempts" in logged and f"127.0.0.1:{bad.port}" in logged
        assert "SECRETPATH" not in logged and "/services/" not in logged  # a webhook's path is its secret
    finally:
        notifier.close(timeout=2)
        bad.close()
        good.close()


def test_kept_notifications_are_bounded_and_counted():
    bad = RawReceiver("down")
    notifier = Notifier([Target(bad.url)], attempts=1, backoff=0.05, retry_cap=0.1, timeout=0.5, max_kept=5)
    try:
        for i in range(12):
            notifier.observe("m", None, {}, [result(f"f{i}", "warning")])
        assert notifier.drain(10)
        assert notifier.pending() == 5 and notifier.stats["dropped"] == 7
        # a dropped firing notification is not "said": the next window that still fails says it again
        notifier.observe("m", None, {}, [result("f3", "warning")])  # f1..f6 were dropped whatever the timing
        assert notifier.stats["deduplicated"] == 0 and notifier.stats["dropped"] == 8  # (it made room too)
        bad.listen()
        assert wait_until(lambda: notifier.pending() == 0, 10, 0.05)
        features = [b["feature"] for b in bad.bodies]
        assert len(features) == 5 and features[-2:] == ["f11", "f3"], features
    finally:
        notifier.close(timeout=2)
        bad.close()


def test_no_secret_of_a_webhook_or_the_dashboard_link_reaches_a_message_or_a_repr(caplog):
    good = RawReceiver("ok")
    notifier = Notifier([Target(good.url, "slack")], dashboard_url="https://admin:hunter2@kibana.example:5601/app/x")
    try:
        notifier.observe("m", "7", {}, [result("country", "warning")])
        assert wait_until(lambda: len(good.bodies) == 1, 5, 0.05)
        assert "hunter2" not in json.dumps(good.bodies)
        assert "https://kibana.example:5601/app/x" in good.bodies[0]["text"]
        assert "SECRETPATH" not in repr(notifier.targets) and "hunter2" not in repr(notifier)
    finally:
        notifier.close(timeout=2)
        good.close()
