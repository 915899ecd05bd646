"""Outcomes and quality for a service's own index (real engine): predictions and outcomes in the service's layout,
outcomes arriving later (some before their predictions, one repeated later), joined without a write into the
service's index, a page at a time; ``predwatch analyze`` judges quality as ``predwatch check --fields`` does on the
same records as files."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

import test_quality as q
from logging_adapter import contract as c
from analyzers.core.window import analyze as judge
from analyzers.daemon.config import iso
from analyzers.sources.elastic import EsWindowProfiler
from analyzers.sources.layout import layout_from_config
from analyzers.sources.mapped_outcomes import SETTLE, join_mapped_outcomes, labelled_pattern, pending_index
from analyzers.store.baselines import store_baseline
from conftest import delete_indices, write_jsonl
from test_field_maps import ISSUE_MAP, custom, elastic
from logging_adapter.otel import otel_attributes
from test_field_maps_es import HISTORY_CHECKS, config, index_as_the_service_does, predwatch, untouched

MAP = ISSUE_MAP + 'actual = "outcome.label"\n'  # outcome records: {"time", "req_id", "app", "outcome": {"label"}}
FIELDS = dict(line.split(" = ") for line in MAP.strip().replace('"', "").splitlines())
INLINE = "{ " + ", ".join(MAP.strip().splitlines()) + " }"
PAGE = 100


def outcome_in_their_layout(record: dict) -> dict:
    """An outcome record as the service logs it: when it became known, the request's id, the label."""
    ns = record["predwatch"]
    return {"time": record["@timestamp"], "req_id": ns["prediction_id"],
            "app": {"model_name": ns["model"]["name"]}, "outcome": {"label": ns["actual"]}}


def outcome_in_otel(record: dict) -> dict:
    """An outcome record as Elastic's OpenTelemetry ingestion stores it: ``predwatch.*`` attributes."""
    return {"@timestamp": record["@timestamp"], "body": {"text": "outcome"}, "severity_text": "INFO",
            "attributes": otel_attributes(record["predwatch"]),
            "resource": {"attributes": {"service.name": "checkout-api"}}}


# (the service's prediction and outcome records, its index, the [[models]] lines, check's extra arguments)
LAYOUTS = {
    "custom": (custom, outcome_in_their_layout, "svc{}-labels", "fields = " + INLINE, True),
    "otel": (elastic, outcome_in_otel, "logs-{}.labels-default", 'fields = "otel"', False),
}


class Recording:
    """The real client, with each search, mget and bulk it sends kept (index, request) for the test to read."""

    def __init__(self, client):
        self.client, self.sent = client, []

    def __getattr__(self, name):
        return getattr(self.client, name)

    def search(self, **request):
        self.sent.append(("search", request.get("index"), request))
        return self.client.search(**request)

    def mget(self, **request):
        self.sent.append(("mget", None, request))
        return self.client.mget(**request)

    def bulk(self, **request):
        self.sent.append(("bulk", None, request))
        return self.client.bulk(**request)


@pytest.fixture(scope="module")
def labelled_baseline():
    return q.build_baseline(q.draw(20_000, 1), model=q.MODEL, version="7", predictions=["score"], actual="label")


@pytest.mark.parametrize("layout_name", sorted(LAYOUTS))
def test_quality_of_a_services_index_from_its_own_outcome_records_without_a_write_into_it(
        each_engine, labelled_baseline, tmp_path, layout_name):
    es = each_engine  # the same test on each real engine
    as_prediction, as_outcome, index_name, model_lines, mapped = LAYOUTS[layout_name]
    # two days ago: a sweep's bounds follow the clock (outcomes are read as the service indexes them)
    T = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(days=2)
    good, good_outs = q.records(q.draw(600, 90), start=T, tag="a")
    bad, bad_outs = q.records(q.draw(600, 91, flipped=0.5), start=T + timedelta(hours=1), tag="b")
    repeated = json.loads(json.dumps(good_outs[5]))  # the same outcome told again a day later, corrected
    repeated["@timestamp"] = iso(T + timedelta(days=1, hours=5))
    repeated["predwatch"]["actual"] = 1 - good_outs[5]["predwatch"]["actual"]
    preds = [as_prediction(r, i) for i, r in enumerate(good + bad)]
    outs = [as_outcome(r) for r in good_outs + bad_outs + [repeated]]
    time_of = "time" if mapped else "@timestamp"
    # the service indexes what is known by CUTOFF, then the rest: b's predictions shipped late (outcomes of them
    # before them), and a few outcomes indexed hours after their own time (read by the next sweep's lookback)
    cutoff = iso(T + timedelta(hours=16))
    first = [o for o in outs if o[time_of] < cutoff]
    late = first[::25]
    first = [o for o in first if o not in late]
    later = [o for o in outs if o[time_of] >= cutoff] + late
    waiting = sum(_id(o, mapped).startswith("b-") for o in first)
    assert 100 < waiting < len(first) - 100 and len(first) % PAGE

    (tmp_path / "map.toml").write_text(MAP)
    files = write_jsonl(tmp_path / "theirs.jsonl", preds + outs)
    proc = predwatch("check", "--baseline", str(_saved(labelled_baseline, tmp_path)), "--logs", str(files),
                     "--window", "1h", "--format", "json",
                     *(("--fields", str(tmp_path / "map.toml")) if mapped else ()))
    assert proc.returncode == 1, proc.stderr
    local = {d["window"]["start"]: d for d in map(json.loads, proc.stdout.splitlines()) if "window" in d}
    second = iso(T + timedelta(hours=1))
    assert {f["check"] for f in local[second]["findings"]} >= {"quality_drop"}
    assert local[iso(T)]["quality"]["labelled"] == 600 == local[second]["quality"]["labelled"]

    index = index_name.format(es.prefix)
    layout = layout_from_config({"index": index, "fields": FIELDS if mapped else "otel"}, q.MODEL)
    try:
        store_baseline(es.client, labelled_baseline, es.prefix)
        index_as_the_service_does(es.client, index, preds[:600] + first)
        before = untouched(es.client, index)
        recording = Recording(es.client)
        report = join_mapped_outcomes(recording, es.prefix, q.MODEL, layout, lambda v: labelled_baseline, page=PAGE,
                                      now=c.parse_time(cutoff) + SETTLE)  # the join of the moment they were indexed
        assert (report.joined, report.unmatched, report.given_up) == (len(first) - waiting, waiting, 0)
        assert len(es.docs("labelled-*")) == len(first) - waiting
        assert len(es.docs(f"pending-{q.MODEL}")) == waiting
        # one page at a time: each search of the service's index asks at most a page, by ids when for predictions
        service = [r for kind, where, r in recording.sent if kind == "search" and where == index]
        assert len(service) == 2 * (len(first) // PAGE + 1), len(service)  # each page of outcomes, its lookup
        for request in service:
            assert request["size"] <= 2 * PAGE
            terms = [f["terms"] for f in request["query"]["bool"]["filter"] if "terms" in f]
            ranges = [f["range"] for f in request["query"]["bool"]["filter"] if "range" in f]
            assert (len(terms) == 1 and len(next(iter(terms[0].values()))) <= PAGE and not ranges) or \
                   (not terms and list(ranges[0]) == [time_of] and set(ranges[0][time_of]) <= {"gte", "lt"}), request
        assert untouched(es.client, index) == before

        index_as_the_service_does(es.client, index, preds[600:] + later)
        before = untouched(es.client, index)
        proc = predwatch("analyze", "--config", str(config(es, tmp_path, "labels", f'index = "{index}"\n'
                                                                                   f"{model_lines}\n")),
                         "--model", q.MODEL, "--start", iso(T), "--end", iso(T + timedelta(hours=2)))
        assert proc.returncode == 1, (proc.stdout, proc.stderr)
        assert "quality is not judged" not in proc.stderr and "never occurs" not in proc.stderr, proc.stderr
        assert f"{q.MODEL}: {waiting + len(later):,} outcomes joined" in proc.stdout, proc.stdout  # (a-5 twice)
        assert untouched(es.client, index) == before
        assert len(es.docs("labelled-*")) == 1200 and not es.docs(f"pending-{q.MODEL}")
        (corrected,) = [h["_source"] for h in es.docs("labelled-*") if h["_id"] == "a-5"]
        assert corrected["predwatch"]["outcome"]["actual"] == str(repeated["predwatch"]["actual"])

        # the cluster's quality section of each window is the one of the files; so are the findings
        for start in (T, T + timedelta(hours=1)):
            profiler = EsWindowProfiler(es.client, labelled_baseline, prefix=es.prefix, layout=layout)
            remote = judge(profiler.profile(iso(start), iso(start + timedelta(hours=1)), "7"), labelled_baseline)
            expected = local[iso(start)]["quality"]
            assert _comparable(remote.quality) == pytest.approx(_comparable(expected)), iso(start)
        found = {(h["_source"]["predwatch"]["window"]["start"], h["_source"]["predwatch"]["check"],
                  h["_source"]["predwatch"].get("metric"), h["_source"]["predwatch"]["status"])
                 for h in es.docs("findings*") if h["_source"]["predwatch"]["check"] not in HISTORY_CHECKS}
        told = {(start, f["check"], f.get("metric"), f["severity"]) for start, d in local.items()
                for f in d["findings"]}
        assert {f for f in found if "quality" in f[1]} == {f for f in told if "quality" in f[1]}
        assert any(f[1] == "quality_drop" and f[0] == second for f in found), found
        assert found == told
    finally:
        try:  # a data stream where the engine has a template for logs-*-*
            es.client.indices.delete_data_stream(name=index)
        except Exception:  # noqa: BLE001 - an ordinary index
            delete_indices(es.client, index)
        delete_indices(es.client, f"{labelled_pattern(es.prefix, q.MODEL)},{pending_index(es.prefix, q.MODEL)}")


def _id(record: dict, mapped: bool) -> str:
    return record["req_id"] if mapped else record["attributes"]["predwatch.prediction_id"]


def _saved(baseline, tmp_path):
    path = tmp_path / "baseline.json"
    baseline.save(path)
    return path


def _comparable(section: dict, path: str = "") -> dict:
    """A quality section as flat ``path: value`` pairs, for ``pytest.approx``."""
    out = {}
    for key, value in section.items():
        if isinstance(value, dict):
            out.update(_comparable(value, f"{path}{key}."))
        else:
            out[path + key] = value
    return out


def test_the_daemon_re_analyses_the_windows_whose_predictions_got_labels_in_the_services_index(es, labelled_baseline):
    from analyzers.daemon.analyzer import Analyzer
    from analyzers.daemon.config import DaemonConfig
    from test_quality_es import quality_docs

    T = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(days=2)
    good, good_outs = q.records(q.draw(600, 92), start=T, tag="a")
    bad, bad_outs = q.records(q.draw(600, 93, flipped=0.5), start=T + timedelta(hours=1), tag="b")
    index = f"svc{es.prefix}-daemon-labels"
    try:
        store_baseline(es.client, labelled_baseline, es.prefix)
        index_as_the_service_does(es.client, index, [custom(r, i) for i, r in enumerate(good + bad)])
        cfg = DaemonConfig.from_dict({
            "elasticsearch": {"url": es.url, "distribution": es.settings.distribution, "prefix": es.prefix},
            "models": [{"name": q.MODEL, "window": "1h", "lag": "0s", "backfill": "2h", "recent_days": 0,
                        "index": index, "fields": FIELDS}]})
        analyzer, job = Analyzer(es.client, cfg), cfg.models[0]
        assert analyzer.run_model(job, now=T + timedelta(hours=2)) == 2
        first, second = iso(T), iso(T + timedelta(hours=1))
        assert quality_docs(es, second)[("label_coverage", None)]["value"] == 0.0
        # hours later the service logs the outcomes, in its own index; the daemon has no new window to analyse
        index_as_the_service_does(es.client, index, [outcome_in_their_layout(r) for r in bad_outs[::-1] + good_outs])
        before = untouched(es.client, index)
        redone = analyzer.backfill_outcomes(job, datetime.now(timezone.utc))
        assert [iso(d) for d in redone] == [first, second]
        after_good, after_bad = quality_docs(es, first), quality_docs(es, second)
        assert after_good[("label_coverage", None)]["value"] == 1.0 == after_bad[("label_coverage", None)]["value"]
        assert after_bad[("quality_drop", "accuracy")]["status"] in ("warning", "critical")
        assert after_good[("quality_drop", "accuracy")]["status"] == "ok"
        drops = [h["_source"]["predwatch"] for h in es.docs("findings") if
                 h["_source"]["predwatch"]["check"] == "quality_drop"]
        assert drops and {f["window"]["start"] for f in drops} == {second}, "stamped with the prediction window"
        assert untouched(es.client, index) == before
        # a second pass reads the lookback again and finds nothing new: nothing re-analysed
        assert analyzer.backfill_outcomes(job, datetime.now(timezone.utc)) == []
    finally:
        delete_indices(es.client, index)
        delete_indices(es.client, f"{labelled_pattern(es.prefix, q.MODEL)},{pending_index(es.prefix, q.MODEL)}")
