"""``predwatch ship`` under a real logrotate (Debian's), while records are written.

Each test writes prediction records, rotates with ``logrotate -f -s STATE CONFIG`` as cron would, ships,
and counts the documents by their deterministic ids: every record the files held is indexed once.
"""
from __future__ import annotations

import gzip
import logging
import logging.handlers
import shutil
import subprocess
import threading
import time
from pathlib import Path

import orjson
import pytest

from conftest import wait_until
from logging_adapter import PredictionFormatter
from logging_adapter.elastic import make_client
from logging_adapter.ship import Shipper
from test_shipping import features, plog_to

BATCH_TIME = 1_765_000_000.0  # one @timestamp for every record of a batch job: files start alike


@pytest.fixture(scope="module")
def logrotate() -> str:
    found = shutil.which("logrotate") or (Path("/usr/sbin/logrotate").exists() and "/usr/sbin/logrotate")
    if not found:
        pytest.skip("logrotate not installed: apt-get install -y logrotate (Debian's) to run the rotation tests")
    return found


def rotate(logrotate: str, tmp_path: Path, log: Path, options: str, keep: int = 100) -> None:
    config = tmp_path / "logrotate.conf"
    config.write_text(f"{log} {{\n    rotate {keep}\n    missingok\n{options}\n}}\n")
    proc = subprocess.run([logrotate, "-f", "-s", str(tmp_path / "logrotate.state"), str(config)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def writer(log: Path, copytruncate: bool):
    """A service logging predictions: reopening after a rename (create) or appending after a truncation."""
    handler = logging.FileHandler(log) if copytruncate else logging.handlers.WatchedFileHandler(log)
    handler.setFormatter(PredictionFormatter(service="svc"))
    return plog_to(handler), handler


def ids_in_files(log: Path) -> list[str]:
    """The ids of every record the log and its rotated siblings hold (decompressed), once per line."""
    ids = []
    for path in log.parent.iterdir():
        if not path.name.startswith(log.name):
            continue
        data = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
        ids += [orjson.loads(line)["predwatch"]["prediction_id"] for line in data.splitlines() if line.strip()]
    return ids


def indexed(es) -> tuple[int, set[str]]:
    """How many documents, and their ids (each record's deterministic id)."""
    es.refresh()
    hits = es.client.search(index=f"{es.prefix}-predictions-*", size=10_000, query={"match_all": {}},
                            _source=False, ignore_unavailable=True, allow_no_indices=True)["hits"]
    total = hits["total"]["value"] if isinstance(hits["total"], dict) else hits["total"]
    return total, {h["_id"] for h in hits["hits"]}


def ship_while_rotating(es, tmp_path, logrotate, options: str, copytruncate: bool, records: int = 1500,
                        rotations: int = 3, timestamp: float | None = None) -> tuple[list[str], Shipper]:
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "predictions.jsonl"
    plog, handler = writer(log, copytruncate)
    shipper = Shipper(make_client(es.settings), [str(log)], state_dir=tmp_path / "state", prefix=es.prefix,
                      poll_interval=0.5)  # the default: a rotation often comes before the next pass
    shipping = threading.Thread(target=shipper.run, daemon=True)
    written: list[str] = []

    def write() -> None:
        for i in range(records):
            written.append(plog.log(features(i), 0.5, timestamp=timestamp))
            time.sleep(0.002)

    writing = threading.Thread(target=write)
    shipping.start()
    writing.start()
    for _ in range(rotations):
        time.sleep(1.05)  # dateext names are unique to the second
        rotate(logrotate, tmp_path, log, options)
    writing.join()
    handler.close()
    time.sleep(1.05)
    rotate(logrotate, tmp_path, log, options)  # the last records, rotated before they were read
    on_disk = ids_in_files(log)
    wait_until(lambda: indexed(es)[0] >= len(set(on_disk)), 20)
    time.sleep(0.3)
    shipper.stop.set()
    shipping.join(30)
    assert len([p for p in logs.iterdir() if p.name.endswith(".gz")]) >= rotations, "the test must compress"
    return written, shipper


def check(es, written: list[str], on_disk: list[str], shipper: Shipper, copytruncate: bool) -> None:
    count, ids = indexed(es)
    lost = set(on_disk) - ids
    duplicated = count - len(ids)
    print(f"written {len(written)}, in the files {len(set(on_disk))}, indexed {count}: lost {len(lost)}, "
          f"duplicated {duplicated}, re-sent {shipper.stats['duplicates']}, "
          f"lost by copytruncate itself {len(set(written) - set(on_disk))}; stats {dict(shipper.stats)}")
    assert not lost, f"{len(lost)} records the files held were never shipped"
    assert duplicated == 0 and ids <= set(written)
    if not copytruncate:
        assert set(on_disk) == set(written), "create-mode rotation keeps every record"


@pytest.mark.parametrize("options", ["    dateext\n    dateformat -%Y%m%d-%s\n    compress\n    create",
                                     "    compress\n    create"], ids=["dateext-compress", "compress"])
def test_ship_keeps_every_record_through_logrotate_create_and_compress(es, tmp_path, logrotate, options):
    written, shipper = ship_while_rotating(es, tmp_path, logrotate, options, copytruncate=False)
    check(es, written, ids_in_files(tmp_path / "logs" / "predictions.jsonl"), shipper, copytruncate=False)


def test_ship_keeps_every_record_through_copytruncate_with_one_timestamp(es, tmp_path, logrotate):
    options = "    dateext\n    dateformat -%Y%m%d-%s\n    compress\n    copytruncate"
    written, shipper = ship_while_rotating(es, tmp_path, logrotate, options, copytruncate=True,
                                           timestamp=BATCH_TIME)
    check(es, written, ids_in_files(tmp_path / "logs" / "predictions.jsonl"), shipper, copytruncate=True)


@pytest.mark.parametrize("mode", ["create", "copytruncate"])
def test_ship_once_from_cron_between_rotations_of_files_that_start_alike(es, tmp_path, logrotate, mode):
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "predictions.jsonl"
    options = f"    dateext\n    dateformat -%Y%m%d-%s\n    compress\n    {mode}"
    written: list[str] = []
    stats = []

    def cron_ship() -> None:
        shipper = Shipper(make_client(es.settings), [str(log)], state_dir=tmp_path / "state", prefix=es.prefix)
        stats.append(dict(shipper.run(once=True)))

    plog, handler = writer(log, copytruncate=mode == "copytruncate")
    for round_ in range(4):
        written += [plog.log(features(i), 0.5, timestamp=BATCH_TIME) for i in range(300)]
        cron_ship()  # reads this round's first 300
        written += [plog.log(features(i), 0.5, timestamp=BATCH_TIME) for i in range(300)]
        time.sleep(1.05)
        rotate(logrotate, tmp_path, log, options)  # the next 300 are only in the .gz now
        if round_ % 2:
            cron_ship()
    written += [plog.log(features(i), 0.5, timestamp=BATCH_TIME) for i in range(100)]
    handler.close()
    cron_ship()
    cron_ship()  # nothing new: nothing re-sent
    on_disk = ids_in_files(log)
    assert set(on_disk) == set(written), "no writes during rotation: the files hold every record"
    count, ids = indexed(es)
    print(f"{mode}: written {len(written)}, indexed {count}: lost {len(set(written) - ids)}, "
          f"duplicated {count - len(ids)}, re-sent {sum(s.get('duplicates', 0) for s in stats)}")
    assert ids == set(written) and count == len(written)
    assert stats[-1].get("sent", 0) == 0 and stats[-1].get("duplicates", 0) == 0


def test_lines_deleted_before_they_were_read_are_reported_with_their_size(es, tmp_path, logrotate, monkeypatch,
                                                                          caplog):
    from logging_adapter import ship

    monkeypatch.setattr(ship, "FORGET_AFTER", 0.0)
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "predictions.jsonl"
    plog, handler = writer(log, copytruncate=False)
    for i in range(50):
        plog.log(features(i), 0.5)
    shipper = Shipper(make_client(es.settings), [str(log)], state_dir=tmp_path / "state", prefix=es.prefix)
    shipper.run(once=True)
    shipped = log.stat().st_size
    for i in range(30):
        plog.log(features(i), 0.5)
    unread = log.stat().st_size - shipped
    handler.close()
    from conftest import free_port
    from logging_adapter.elastic import EsSettings
    down = make_client(EsSettings(url=f"http://127.0.0.1:{free_port()}", distribution="opensearch"))
    away = Shipper(down, [str(log)], state_dir=tmp_path / "state", prefix=es.prefix, deadline=0.5)
    away.run(once=True)  # a pass saw the new lines but could not deliver them (offsets kept)
    assert away.undelivered == 30
    rotate(logrotate, tmp_path, log, "    create", keep=0)  # rotate 0: the old file is deleted at once
    shipper = Shipper(make_client(es.settings), [str(log)], state_dir=tmp_path / "state", prefix=es.prefix)
    with caplog.at_level(logging.WARNING, logger="predwatch.ship"):
        shipper.run(once=True)  # the file is gone: kept a while, in case a copy turns up
        shipper.run(once=True)
    said = [r.getMessage() for r in caplog.records if "never read" in r.getMessage()]
    assert len(said) == 1 and f"{unread:,} byte(s)" in said[0], said
    assert shipper.stats["unreachable_bytes"] == unread


def test_offsets_of_the_previous_version_carry_on_without_resending(es, tmp_path):
    log = tmp_path / "p.jsonl"
    plog, handler = writer(log, copytruncate=False)
    for i in range(40):
        plog.log(features(i), 0.5)
    read_before = log.stat().st_size
    for i in range(10):
        plog.log(features(i), 0.5)
    handler.close()
    st = log.stat()
    state = tmp_path / "state"
    state.mkdir()
    (state / "offsets.json").write_bytes(orjson.dumps({f"{st.st_dev}:{st.st_ino}": {
        "offset": read_before, "head": log.read_bytes()[:64].hex(), "path": str(log)}}))  # the old layout
    stats = Shipper(make_client(es.settings), [str(log)], state_dir=state, prefix=es.prefix).run(once=True)
    assert stats["sent"] == 10 and stats["duplicates"] == 0
    # the old layout's head still tells another file on a reused inode: read from its start
    other = tmp_path / "other.jsonl"
    plog, handler = writer(other, copytruncate=False)
    for i in range(30):
        plog.log(features(i), 0.5)
    handler.close()
    st = other.stat()
    (state / "offsets.json").write_bytes(orjson.dumps({f"{st.st_dev}:{st.st_ino}": {
        "offset": 2000, "head": log.read_bytes()[:64].hex(), "path": str(other)}}))
    stats = Shipper(make_client(es.settings), [str(other)], state_dir=state, prefix=es.prefix).run(once=True)
    assert stats["sent"] == 30
