"""Server start with several workers: what a client sees from the moment it is started.

Publishes the M-size synthetic model (50k items, top-100 neighbors, a catalog), starts
``python -m simrec.serving.server --workers W`` (default 2) on it and, from that moment,
sends ``/similar`` requests one after another, each on a new connection (so the kernel
spreads them over the workers as it spreads a load balancer's), until ``--ready``
answers in a row are 200. Reported per tree: seconds to the first answer and to the
first 200, how many requests were answered 503 (a worker still loading its model) and
refused (nothing listening yet), and the slowest answered request.

``--tree`` runs the server from another checkout of the repo (e.g. the main branch) with
this one's interpreter, so a change is measured against its baseline in the same run:
``python bench/server_start.py --tree /path/to/main``. Writes ``.bench/server_start.json``
/ ``.md``; ratios, not timed asserts.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, cached_model, write_results  # noqa: E402
from http_load import stop_server  # noqa: E402

from simrec import publishing  # noqa: E402
from simrec.core.snapshot import ModelSnapshot  # noqa: E402
from tests.net import free_port  # noqa: E402

TENANT = "default"


def measure(tree: Path, bucket: str, sku: str, workers: int, ready: int) -> dict:
    """One server start from ``tree``: the client's view until ``ready`` 200s in a row."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(tree), "SIMREC_DATA_URI": bucket,
           "SIMREC_TENANT": TENANT, "SIMREC_MODEL_REFRESH_SECONDS": "60"}  # fmt: skip
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in the finally below
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "simrec.serving.server", "--host", "127.0.0.1",
         "--port", str(port), "--workers", str(workers)],
        cwd=tree, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    out = {"refused": 0, "unavailable": 0, "other": 0, "ok": 0, "first_answer_s": None,
           "first_ok_s": None, "slowest_s": 0.0}  # fmt: skip
    streak = 0
    try:
        while streak < ready:
            if time.monotonic() - t0 > 300 or proc.poll() is not None:
                log.seek(0)
                raise RuntimeError("server did not get ready:\n" + log.read().decode()[-2000:])
            start = time.monotonic()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            try:
                conn.request("GET", f"/similar?sku={sku}&n=10")
                status = conn.getresponse().status
            except OSError:
                out["refused"] += 1
                streak = 0
                time.sleep(0.01)
                continue
            finally:
                conn.close()
            now = time.monotonic()
            out["slowest_s"] = max(out["slowest_s"], now - start)
            if out["first_answer_s"] is None:
                out["first_answer_s"] = now - t0
            if status == 200:
                out["ok"] += 1
                streak += 1
                if out["first_ok_s"] is None:
                    out["first_ok_s"] = now - t0
            else:
                out["unavailable" if status == 503 else "other"] += 1
                streak = 0
                time.sleep(0.01)
        out["ready_s"] = time.monotonic() - t0
    finally:
        stop_server(proc, log)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--ready", type=int, default=20, help="200s in a row that end a start")
    parser.add_argument("--repeats", type=int, default=2, help="starts per tree")
    parser.add_argument("--tree", type=Path, help="a baseline checkout, measured first")
    args = parser.parse_args(argv)

    _, base = cached_model("M")
    workdir = Path(tempfile.mkdtemp(prefix="simrec-start-"))
    try:
        bucket = str(workdir / "bucket")
        meta = {"tenant": TENANT, "version": "start-v1"}
        model = ModelSnapshot(**{**base.__dict__, "metadata": meta})
        publishing.write_snapshot(bucket, TENANT, model)
        sku = base.skus[0]
        trees = {"baseline": args.tree} if args.tree else {}
        trees["this tree"] = ROOT
        results: dict[str, list[dict]] = {name: [] for name in trees}
        for _ in range(args.repeats):  # interleaved: the machine's load drifts
            for name, tree in trees.items():
                results[name].append(measure(tree, bucket, sku, args.workers, args.ready))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    lines = [f"### Server start ({args.workers} workers, M model, {args.ready} 200s in a row)",
             "", "| tree | start | first answer s | first 200 s | ready s | 503s | refused "
             "| slowest request s |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, runs in results.items():
        for i, r in enumerate(runs):
            lines.append(f"| {name} | {i + 1} | {r['first_answer_s']:.2f} | {r['first_ok_s']:.2f} "
                         f"| {r['ready_s']:.2f} | {r['unavailable']} | {r['refused']} "
                         f"| {r['slowest_s']:.2f} |")  # fmt: skip
    if "baseline" in results:
        def mean(name: str, key: str) -> float:
            return sum(r[key] for r in results[name]) / len(results[name])

        lines.append("")
        ratio = mean("this tree", "ready_s") / mean("baseline", "ready_s")
        lines.append(
            f"this tree / baseline: ready time {ratio:.2f}x, 503s "
            f"{mean('this tree', 'unavailable'):.0f} vs {mean('baseline', 'unavailable'):.0f}"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    write_results("server_start", results, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
