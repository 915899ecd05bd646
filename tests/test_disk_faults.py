"""Full, read-only and unwritable disks under the shipping path; private modes of what it keeps on disk.

The small filesystems are real tmpfs mounts (the tests run as root in the dev container); where
mounting is not allowed the tests that need one are skipped with the reason.
"""
from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import uuid
from pathlib import Path

import orjson
import pytest

from conftest import free_port, write_jsonl
from logging_adapter import PredictionLogger, configure
from logging_adapter.bulk import DeadLetters
from logging_adapter.elastic import EsSettings, make_client
from logging_adapter.handler import ElasticsearchHandler
from logging_adapter.ship import Shipper
from test_shipping import features, ids_in, plog_to


def mount_tmpfs(where: Path, size: str, *options: str) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    opts = ",".join([f"size={size}", "mode=0700", *options])
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({proc.stderr.strip() or proc.returncode}): "
                    "these tests need root in a container that allows mount")
    return where


@pytest.fixture
def small_disk(tmp_path):
    """A 128 KiB filesystem: fills after a few hundred records."""
    where = mount_tmpfs(tmp_path / "small", "128k")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.fixture
def read_only_disk(tmp_path):
    where = mount_tmpfs(tmp_path / "ro", "64k", "ro")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=False)


def down() -> EsSettings:
    return EsSettings(url=f"http://127.0.0.1:{free_port()}", distribution="opensearch")


def spooled_ids(directory: Path) -> list[str]:
    ids = []
    for segment in sorted(directory.glob("slot-*/spool-*.ndjson")):
        lines = segment.read_bytes().splitlines()
        for action in lines[0::2]:
            ids.append(orjson.loads(action)["create"]["_id"])
    return ids


# -- item 8: the spool on a full disk -------------------------------------------------------------------

def test_spool_on_a_full_disk_counts_every_record_it_could_not_keep(es, small_disk, caplog):
    handler = ElasticsearchHandler(make_client(down()), prefix=es.prefix, spool_dir=small_disk, flush_interval=0.05,
                                   queue_size=20, exit_timeout=0.5, request_timeout=0.5)
    plog = plog_to(handler)
    with caplog.at_level(logging.INFO, logger="predwatch.shipper"):
        ids = [plog.log(features(i), 0.1) for i in range(2000)]
        handler.close()
    stats = dict(handler.stats)
    assert stats["dropped"] > 0, stats
    assert stats["spooled"] + stats["dropped"] == 2000, stats
    assert sum(handler.drop_reasons.values()) == stats["dropped"]
    assert any("No space left on device" in reason for reason in handler.drop_reasons), handler.drop_reasons
    said = [r.getMessage() for r in caplog.records if r.name == "predwatch.shipper"]
    assert len(said) <= 6, f"{len(said)} messages: the flood is rate-limited"
    assert any("DROPPED" in m and "No space left on device" in m for m in said), said
    assert not any("records are kept" in m for m in said if "DROPPED" not in m and "could not be kept" in m)
    # what the spool says it kept is whole and readable: a full disk tore nothing
    kept = spooled_ids(small_disk)
    assert len(kept) == len(set(kept)) == stats["spooled"]

    again = ElasticsearchHandler(make_client(es.settings), prefix=es.prefix, spool_dir=small_disk, flush_interval=0.05)
    assert again.flush(60), dict(again.stats)
    again.close()
    delivered = ids_in(es)
    assert sorted(delivered) == sorted(kept) and set(delivered) <= set(ids)
    lost_silently = 2000 - len(delivered) - stats["dropped"]
    print(f"full disk: {len(delivered)} delivered, {stats['dropped']} dropped and counted, "
          f"{lost_silently} lost silently, {len(delivered) - len(set(delivered))} duplicated")
    assert lost_silently == 0


@pytest.mark.parametrize("where", ["under a file", "read-only filesystem"])
def test_an_unwritable_spool_directory_never_stops_the_service(es, tmp_path, where, caplog, request):
    if where == "under a file":
        (tmp_path / "file").write_text("not a directory")
        spool_dir = tmp_path / "file" / "spool"
    else:
        spool_dir = request.getfixturevalue("read_only_disk") / "spool"
    with caplog.at_level(logging.WARNING, logger="predwatch.shipper"):
        handler = ElasticsearchHandler(make_client(es.settings), prefix=es.prefix, spool_dir=spool_dir,
                                       flush_interval=0.05)
    assert handler.spool_dir is None
    assert any("cannot be used" in r.getMessage() and "in memory" in r.getMessage() for r in caplog.records)
    plog = plog_to(handler)
    ids = [plog.log(features(i), 0.1) for i in range(50)]
    assert handler.flush(30)
    handler.close()
    assert sorted(ids_in(es)) == sorted(ids)

    # Elasticsearch away as well: what waits in memory at close is counted, not silently gone
    away = ElasticsearchHandler(make_client(down()), prefix=es.prefix, spool_dir=spool_dir, flush_interval=0.05,
                                exit_timeout=0.5, request_timeout=0.5)
    plog = plog_to(away)
    for i in range(20):
        plog.log(features(i), 0.1)
    away.close()
    assert away.stats["dropped"] == 20, dict(away.stats)
    assert any("at close" in reason for reason in away.drop_reasons), away.drop_reasons


def test_configure_path_on_a_full_disk_counts_failures_without_a_traceback_flood(small_disk, capfd):
    name = f"test.fulldisk.{uuid.uuid4().hex}"
    configure(path=small_disk / "p.jsonl", logger=name)
    plog = PredictionLogger("checkout-risk", "7", logger=logging.getLogger(name))
    for i in range(3000):
        plog.log(features(i), 0.1)
    for handler in list(logging.getLogger(name).handlers):
        logging.getLogger(name).removeHandler(handler)
        handler.close()
    err = capfd.readouterr().err
    assert plog.failures > 0 and plog.records + plog.failures == 3000
    assert "Traceback" not in err and len(err.splitlines()) <= 2, err[:2000]
    lines = (small_disk / "p.jsonl").read_bytes().splitlines()
    assert len(lines) == plog.records, "every record counted as logged is in the file"
    for line in lines:
        json.loads(line)  # no torn line where the disk filled


# -- item 12: what is kept on disk is private ---------------------------------------------------------

def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_spool_dead_letters_and_offsets_are_private_whatever_the_umask(es, tmp_path):
    old = os.umask(0)  # the most permissive umask: modes must not depend on it
    try:
        spool_dir = tmp_path / "spool"
        handler = ElasticsearchHandler(make_client(down()), prefix=es.prefix, spool_dir=spool_dir,
                                       flush_interval=0.05, exit_timeout=0.5, request_timeout=0.5)
        plog = plog_to(handler)
        for i in range(20):
            plog.log({"email": f"user{i}@example.com", **features(i)}, 0.1)
        deep: dict = {}
        node = deep
        for _ in range(40):
            node = node.setdefault("a", {})
        plog.log({"nested": deep}, 0.1)  # refused by the contract: a dead letter
        handler.close()
        log = write_jsonl(tmp_path / "p.jsonl", [{"not": "a prediction"}])
        state = tmp_path / "state" / "ship"
        Shipper(make_client(es.settings), [str(log)], state_dir=state, prefix=es.prefix).run(once=True)
    finally:
        os.umask(old)
    slot = handler.spool_dir
    segments = list(slot.glob("spool-*.ndjson"))
    assert segments, "the test must spool"
    for directory in (spool_dir, slot, state, state.parent):
        assert mode(directory) == 0o700, (directory, oct(mode(directory)))
    files = [*segments, slot / ".lock", handler.dead_letters.path, state / "offsets.json", state / "dead-letter.jsonl"]
    for path in files:
        assert mode(path) == 0o600, (path, oct(mode(path)))


def test_an_older_spool_left_world_readable_is_tightened(tmp_path):
    slot = tmp_path / "spool" / "slot-0"
    slot.mkdir(parents=True)
    os.chmod(slot, 0o755)
    segment = slot / "spool-000000001.ndjson"
    segment.write_bytes(b"")
    os.chmod(segment, 0o644)
    letters = slot / "dead-letter.jsonl"
    letters.write_bytes(b"")
    os.chmod(letters, 0o644)
    handler = ElasticsearchHandler(make_client(down()), spool_dir=tmp_path / "spool", exit_timeout=0.2)
    handler.dead_letters.add(b'{"a": 1}', "mapper_parsing_exception: test")
    handler.close()
    assert mode(slot) == 0o700 and mode(segment) == 0o600 and mode(letters) == 0o600


# -- item 5 (dead letters): capped like the spool, refusals said once a minute ------------------------------

def test_dead_letters_are_capped_oldest_kept_and_refusals_rate_limited(tmp_path, caplog):
    logger = logging.getLogger(f"test.deadletters.{uuid.uuid4().hex}")
    letters = DeadLetters(tmp_path / "dl" / "dead-letter.jsonl", max_bytes=20_000, log=logger)
    with caplog.at_level(logging.WARNING, logger=logger.name):
        kept = [letters.add(orjson.dumps({"n": i, "pad": "x" * 100}), "mapper_parsing_exception: no")
                for i in range(500)]
        letters.report.flush()
    size = letters.path.stat().st_size
    assert size <= 20_000
    entries = [json.loads(line) for line in letters.path.read_text().splitlines()]
    assert [json.loads(e["line"])["n"] for e in entries] == list(range(len(entries))), "the oldest are kept"
    assert kept.count(True) == len(entries) and letters.not_kept == 500 - len(entries) > 0
    said = [r for r in caplog.records if r.name == logger.name]
    assert len(said) == 2, [r.getMessage() for r in said]  # the first at once, the rest summed at the end
    assert all(r.levelno == logging.WARNING for r in said)
    assert "499 since the last report" in said[1].getMessage() and "NOT kept" in said[1].getMessage()
    assert "500 in all" in said[1].getMessage()


# -- item 9: at full rate with Elasticsearch up, the disk spool stays for outages -----------------------------

def test_at_full_rate_with_elasticsearch_up_records_go_straight_not_through_the_spool(es, tmp_path):
    import threading
    import time

    handler = ElasticsearchHandler(make_client(es.settings), prefix=es.prefix, spool_dir=tmp_path, flush_interval=0.05,
                                   queue_size=2000)
    plog = plog_to(handler)
    warm = plog.log(features(0), 0.5)  # a service at steady state: today's index exists
    assert handler.flush(30)
    until = time.monotonic() + 2.5
    produced: list[list[str]] = []
    waits: list[float] = []

    def full_rate() -> None:
        ids, worst = [], 0.0
        while time.monotonic() < until:
            start = time.perf_counter()
            ids.append(plog.log(features(len(ids)), 0.5))
            worst = max(worst, time.perf_counter() - start)
        produced.append(ids)
        waits.append(worst)

    threads = [threading.Thread(target=full_rate) for _ in range(8)]
    for thread in threads:
        thread.start()
    most_spooled = 0
    while any(thread.is_alive() for thread in threads):
        most_spooled = max(most_spooled, handler.spool.bytes)
        time.sleep(0.005)
    assert handler.flush(120), dict(handler.stats)
    handler.close()
    ids = [warm] + [i for part in produced for i in part]
    assert None not in ids and len(set(ids)) == len(ids)
    es.refresh()
    indexed = es.client.count(index=f"{es.prefix}-predictions-*")["count"]
    stats = dict(handler.stats)
    print(f"8 threads, 2.5 s: {len(ids)} records, {indexed} indexed, lost {len(ids) - indexed}, "
          f"spooled {stats.get('spooled', 0)}, most spool bytes {most_spooled}, paced calls "
          f"{stats.get('paced', 0)}, worst caller wait {max(waits) * 1000:.0f} ms")
    assert indexed == len(ids), "no record lost, none twice (deterministic ids)"
    assert stats.get("dropped", 0) == 0
    assert most_spooled < 1024 * 1024 and stats.get("spooled", 0) <= len(ids) // 100, stats


def test_ship_on_a_full_state_disk_ships_everything_and_says_so_once(es, small_disk, tmp_path, caplog):
    filler = small_disk / "filler"
    with filler.open("wb", buffering=0) as fh:  # fill the state disk completely
        try:
            while True:
                fh.write(b"x" * 4096)
        except OSError:
            pass
    records = [{"@timestamp": "2026-11-22T07:00:00.000Z", "predwatch": {
        "model": {"name": "checkout-risk"}, "prediction_id": f"full-{i}", "features": features(i)}} for i in range(40)]
    log = write_jsonl(tmp_path / "p.jsonl", records)
    with log.open("ab") as fh:
        fh.write(b"not json\n" * 5)  # dead letters that cannot be written either
    shipper = Shipper(make_client(es.settings), [str(log)], state_dir=small_disk / "state", prefix=es.prefix,
                      batch_size=10)
    with caplog.at_level(logging.WARNING, logger="predwatch.ship"):
        stats = shipper.run(once=True)
    assert stats["sent"] == 40 and sorted(ids_in(es)) == sorted(f"full-{i}" for i in range(40))
    assert shipper.dead_letters.not_kept == 5
    said = [r.getMessage() for r in caplog.records if r.name == "predwatch.ship"]
    assert sum("offsets not saved" in m for m in said) == 1, said
