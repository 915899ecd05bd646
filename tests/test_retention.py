"""Retention judges an index by its age, as ILM does, never by the day in its name: replayed or backfilled
history is kept, and every deletion is said at WARNING with the index, its newest document and the rule."""
from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta, timezone

import orjson

from analyzers.daemon.config import DaemonConfig
from analyzers.daemon.scheduler import run_daemon
from conftest import wait_until, write_jsonl
from logging_adapter.templates import IndexAge, apply_retention, expired_indices
from test_shipping import predwatch

NOW = datetime(2026, 11, 22, 12, tzinfo=timezone.utc)


def test_an_index_expires_by_its_creation_and_its_newest_document_not_by_its_name():
    day = timedelta(days=1)
    ages = {
        "p-predictions-m.2025.11.01": IndexAge(created=NOW - day, newest=NOW - 380 * day),  # replayed today
        "p-predictions-m.2026.10.01": IndexAge(created=NOW - 52 * day, newest=NOW - 2 * day),  # written to lately
        "p-predictions-m.2026.09.01": IndexAge(created=NOW - 82 * day, newest=NOW - 82 * day),
        "p-outcomes-m.2026.09.01": IndexAge(created=NOW - 82 * day, newest=None),
        "p-intervals-m.2026.11.21": IndexAge(created=NOW - 1 * day, newest=NOW - 1 * day),
        "p-findings": IndexAge(created=NOW - 400 * day, newest=NOW - 400 * day),  # not a daily record index
    }
    assert expired_indices(ages, "p", 30, now=NOW) == ["p-outcomes-m.2026.09.01", "p-predictions-m.2026.09.01"]


def year_old_records(n: int) -> list[dict]:
    start = datetime.now(timezone.utc) - timedelta(days=365)
    return [{"@timestamp": (start + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
             "predwatch": {"model": {"name": "churn", "version": "1"}, "prediction_id": f"old-{i}",
                           "features": {"tenure": i}, "prediction": 0.5}} for i in range(n)]


def test_history_replayed_a_year_late_survives_the_daemons_retention(es, tmp_path, caplog):
    log = write_jsonl(tmp_path / "history.jsonl", year_old_records(200))
    shipped = predwatch("ship", str(log), "--once", "--state-dir", str(tmp_path / "state"), *es.es_args())
    assert shipped.returncode == 0, shipped.stderr
    es.refresh()
    assert len(es.docs("predictions-*")) == 200
    config = tmp_path / "predwatch.toml"
    config.write_text(f'[elasticsearch]\nurl = "{es.url}"\ndistribution = "{es.settings.distribution}"\n'
                      f'prefix = "{es.prefix}"\n\n[daemon]\nretention_days = 30\nheartbeat = "1s"\nlease = "3s"\n\n'
                      '[[models]]\nname = "churn"\nwindow = "1h"\nbackfill = "1h"\n')
    stop = threading.Event()
    daemon = threading.Thread(target=run_daemon, args=(DaemonConfig.load(config), stop), daemon=True)
    with caplog.at_level(logging.INFO, logger="predwatch.setup"):
        daemon.start()
        try:
            assert wait_until(lambda: any("daily indices checked" in r.getMessage() for r in caplog.records), 60)
        finally:
            stop.set()
            daemon.join(60)
    assert len(es.docs("predictions-*")) == 200, "every replayed document is still there"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and "retention" in r.getMessage()]


def test_an_index_really_past_the_retention_is_deleted_and_said_at_warning(es, tmp_path, caplog):
    log = write_jsonl(tmp_path / "history.jsonl", year_old_records(20))
    assert predwatch("ship", str(log), "--once", "--state-dir", str(tmp_path / "state"), *es.es_args()).returncode == 0
    es.refresh()
    names = sorted(es.client.indices.get(index=f"{es.prefix}-predictions-*"))
    with caplog.at_level(logging.INFO, logger="predwatch.setup"):
        assert apply_retention(es.client, es.prefix, 30, now=datetime.now(timezone.utc)) == []
        later = datetime.now(timezone.utc) + timedelta(days=31)  # a month on: created and written before the cutoff
        assert apply_retention(es.client, es.prefix, 30, now=later) == names
    assert not es.client.indices.get(index=f"{es.prefix}-predictions-*", allow_no_indices=True)
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(said) == len(names) and all("newest document" in m and "retention_days = 30" in m for m in said), said
    assert orjson.dumps(names[0]).decode().strip('"') in said[0]
