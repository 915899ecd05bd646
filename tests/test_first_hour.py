"""Issue 27: the first hour of a new user, item by item: nothing lost, nothing silent, nothing misleading."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def predwatch(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "predwatch", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


# -- 11: durations read as durations ---------------------------------------------------------------

def test_status_writes_the_lag_as_a_duration_not_a_time_of_day():
    from analyzers.daemon.status import ModelStatus, Status, format_status

    lags = [15 * 3600 + 39 * 60 + 7, 42, 3 * 86400 + 5 * 3600 + 12, 7 * 60]
    text = format_status(Status([], [ModelStatus(f"m{i}", None, "2026-11-22T00:00:00.000Z", lag)
                                     for i, lag in enumerate(lags)]))
    assert "15:39:07" not in text
    for said in ("15 h 39 min", "42 s", "3 d 5 h", "7 min"):
        assert said in text, text
