"""Run every benchmark script (``make bench``); each writes ``.bench/<name>.json/.md``.

To add one, append its script (and default arguments) to ``BENCHMARKS``: a script takes
``--quick``, prints its table with ratios against baselines measured in the same run,
writes its results with ``common.write_results`` and exits non-zero when it misses its
targets. Its figures reach ``.bench/summary.md`` through an extractor in
``bench/summary.py``; the README's performance tables are then regenerated from it by
``bench/readme.py`` (not after ``--quick``: too few samples to publish).
Usage: ``python bench/run_all.py [--quick] [name ...]``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import readme  # noqa: E402
import summary as bench_summary  # noqa: E402

# (name, script, arguments). Scripts missing from this checkout are reported and skipped.
BENCHMARKS: list[tuple[str, str, list[str]]] = [
    ("serving", "serving.py", []),
    ("http_load", "http_load.py", []),
    ("model_switch", "model_switch.py", []),
    ("similarity", "similarity.py", []),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="only these benchmarks")
    parser.add_argument("--quick", action="store_true", help="pass --quick to each script")
    args = parser.parse_args(argv)
    summary = []
    for name, script, extra in BENCHMARKS:
        if args.names and name not in args.names:
            continue
        path = HERE / script
        if not path.exists():
            summary.append((name, "absent", 0.0))
            continue
        print(f"\n=== {name}: {script} {' '.join(extra)}", flush=True)
        started = time.perf_counter()
        cmd = [sys.executable, str(path), *extra, *(["--quick"] if args.quick else [])]
        code = subprocess.run(cmd, check=False).returncode
        summary.append((name, "ok" if code == 0 else f"FAILED ({code})",
                        time.perf_counter() - started))
    print("\n=== summary")
    for name, status, seconds in summary:
        print(f"{name:<12} {status:<12} {seconds:7.1f}s")
    ran = [name for name, status, _ in summary if status != "absent"]
    table = bench_summary.OUT / "summary.md"
    if ran and bench_summary.main(["--out", str(table), *ran]) == 0:
        print(table.read_text())
        if not args.quick:
            readme.main(["--summary", str(table)])
    return 0 if all(s in ("ok", "absent") for _, s, _ in summary) else 1


if __name__ == "__main__":
    sys.exit(main())
