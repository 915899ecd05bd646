"""Does a change keep what ``predwatch check`` says? Byte for byte, against a named git revision.

Runs ``predwatch check --format json`` twice on the same data, once with the code of ``--against`` (checked
out in a temporary git worktree) and once with this working tree, and compares the outputs byte for byte,
with the seconds each took. The data: the flights demo's 275 daily logs (``predwatch demo``, one window a
day, recent days on) and the 1M-record window of ``bench/analyze.py`` (one window). Exit 0 when every
output is the same, 1 when one differs (its first differing line is printed).

    python bench/same_output.py --against HEAD~5 [--records 1000000] [--workdir /tmp/predwatch-same]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.analyze import generate  # noqa: E402


def check(code: Path, args: list[str]) -> tuple[bytes, float]:
    """``predwatch check`` run with the package found in ``code``: its standard output and seconds."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "predwatch", "check", "--format", "json", *args], env=env,
                          cwd=code, capture_output=True)
    if done.returncode not in (0, 1):
        raise SystemExit(f"{code}: check exited {done.returncode}: {done.stderr.decode()[-2000:]}")
    return done.stdout, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", required=True, help="the git revision whose output is the truth")
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "predwatch-same"))
    args = parser.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    demo = work / "demo"
    if not (demo / "baseline.json").exists():
        subprocess.run([sys.executable, "-m", "predwatch", "demo", "--workdir", str(demo)], check=True,
                       stdout=subprocess.DEVNULL, cwd=ROOT)
    train_csv, window = generate(work, args.records)
    bench_baseline = work / "bench-baseline.json"
    if not bench_baseline.exists():
        subprocess.run([sys.executable, "-m", "predwatch", "baseline", "--data", str(train_csv), "--model", "bench",
                        "--prediction", "score", "--out", str(bench_baseline)], check=True, cwd=ROOT,
                       stdout=subprocess.DEVNULL)
    cases = {
        "demo, 275 daily windows": ["--baseline", str(demo / "baseline.json"), "--logs",
                                    *sorted(map(str, (demo / "logs").glob("*.jsonl"))), "--window", "1d"],
        f"bench, {args.records:,} records": ["--baseline", str(bench_baseline), "--logs", str(window)],
    }
    old = Path(tempfile.mkdtemp(prefix="predwatch-against-"))
    subprocess.run(["git", "worktree", "add", "--detach", str(old), args.against], cwd=ROOT, check=True,
                   capture_output=True)
    same = True
    try:
        for name, case in cases.items():
            before, t_before = check(old, case)
            after, t_after = check(ROOT, case)
            verdict = "same bytes" if before == after else "DIFFERENT"
            print(f"{name}: {verdict} ({len(after):,} bytes); {args.against}: {t_before:.1f} s, "
                  f"this tree: {t_after:.1f} s ({t_after / t_before:.2f}x)")
            if before != after:
                same = False
                for i, (a, b) in enumerate(zip(before.splitlines(), after.splitlines())):
                    if a != b:
                        print(f"  first difference, line {i + 1}:\n  - {a[:300]!r}\n  + {b[:300]!r}")
                        break
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT, capture_output=True)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
