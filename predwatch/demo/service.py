"""The demo as live services (docker-compose): a model service over HTTP and a traffic replayer.

``predwatch demo-service`` trains the flight-delay model on January-March, stores
its baseline in Elasticsearch (when configured), and answers ``POST /predict``
with one flight's features, logging every prediction through ``PredictionLogger``
to a rotating JSONL file that ``predwatch ship`` (or Filebeat) tails.
``predwatch demo-traffic`` replays April onwards against it, in time order.
"""
from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pandas as pd

from logging_adapter import PredictionLogger, configure

from .flights import FEATURES, MODEL, VERSION, DelayModel, native, load_flights, outputs, training_baseline

log = logging.getLogger("predwatch.demo")


def build_service(log_path: str | Path, store_baseline: bool = False, prefix: str = "predwatch"):
    """Train, optionally store the baseline in Elasticsearch, and return (model, PredictionLogger)."""
    flights = load_flights()
    train = flights[flights["month"] <= 3]
    model = DelayModel().fit(train)
    if store_baseline:
        from logging_adapter.elastic import make_client

        from analyzers.store.baselines import store_baseline as store

        baseline = training_baseline(model, train)
        for _ in range(30):  # Elasticsearch may still be starting
            try:
                store(make_client(), baseline, prefix)
                break
            except Exception as exc:  # noqa: BLE001
                log.warning("baseline not stored yet (%s); retrying", exc)
                time.sleep(2)
    configure(path=log_path, service="flight-delay-service")
    return model, PredictionLogger(MODEL, VERSION, "flight-delay-service")


def serve(port: int, log_path: str | Path, store_baseline: bool = False, prefix: str = "predwatch") -> None:
    model, plog = build_service(log_path, store_baseline, prefix)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self._answer(200 if self.path == "/health" else 404, {"status": "ok", "model": MODEL, "version": VERSION})

        def do_POST(self) -> None:  # noqa: N802
            if self.path != "/predict":
                self._answer(404, {"error": "POST /predict"})
                return
            try:
                features = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                if not isinstance(features, dict):
                    raise ValueError("send one JSON object of features")
            except ValueError as exc:
                self._answer(400, {"error": str(exc)})
                return
            with plog.timed(features) as call:
                (call.prediction,) = outputs(model.predict(pd.DataFrame([features])))
            self._answer(200, {"prediction": call.prediction, "prediction_id": call.prediction_id})

        def _answer(self, status: int, doc: dict[str, Any]) -> None:
            body = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    print(f"flight-delay model service on :{port}, logging predictions to {log_path}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


def traffic(url: str, rate: float = 20.0, limit: int | None = None) -> int:
    """POST April-December flights in time order at ``rate`` per second; returns how many were answered."""
    flights = load_flights()
    later = flights[flights["month"] >= 4]
    sent = 0
    for _ in range(60):  # wait for the service to come up
        try:
            urllib.request.urlopen(url.rstrip("/") + "/health", timeout=2).read()
            break
        except (urllib.error.URLError, OSError):
            time.sleep(2)
    pause = 1.0 / rate if rate > 0 else 0.0
    for row in later[FEATURES].itertuples(index=False):
        features = {k: native(v) for k, v in row._asdict().items()}
        request = urllib.request.Request(url.rstrip("/") + "/predict", data=json.dumps(features).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        try:
            urllib.request.urlopen(request, timeout=10).read()
            sent += 1
        except (urllib.error.URLError, OSError) as exc:
            log.warning("request failed: %s", exc)
        if limit and sent >= limit:
            break
        if pause:
            time.sleep(pause)
    return sent
