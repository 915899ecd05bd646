"""Shared fixtures: the synthetic model's baseline, windows, and a headless browser."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

sys.path.insert(0, str(Path(__file__).parent))

import synth  # noqa: E402

from analyzers.baseline import Baseline, build_baseline  # noqa: E402


@pytest.fixture(scope="session")
def baseline() -> Baseline:
    return build_baseline(synth.table(50_000, seed=1), model="checkout-risk", version="7",
                          kinds=synth.KINDS, predictions=["score"])


@pytest.fixture(scope="session")
def baseline_file(baseline, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("baseline") / "baseline.json"
    baseline.save(path)
    return path


def write_jsonl(path: Path, records) -> Path:
    with path.open("wb") as fh:
        for rec in records:
            fh.write(orjson.dumps(rec) + b"\n")
    return path


def find_browser() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="session")
def browser() -> str:
    found = find_browser()
    if not found:
        if os.environ.get("PREDWATCH_REQUIRE_BROWSER"):
            pytest.fail("no headless browser found (install Debian's chromium) and PREDWATCH_REQUIRE_BROWSER is set")
        pytest.skip("no headless browser found: install Debian's chromium to run the report screenshot tests")
    return found


def screenshot(browser: str, page: Path, out: Path, tmp: Path, size: str = "1280,2000") -> tuple[Path, str]:
    """Headless Chromium: a PNG of the page and the DOM after scripts ran (``--dump-dom``)."""
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp / 'profile'}",
             f"--window-size={size}"]
    subprocess.run(flags + [f"--screenshot={out}", page.as_uri()], check=True, capture_output=True, timeout=120)
    dom = subprocess.run(flags + ["--dump-dom", page.as_uri()], check=True, capture_output=True, text=True,
                         timeout=120).stdout
    return out, dom
