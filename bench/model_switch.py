"""Request latency while the server switches models, in process (no HTTP noise).

The serving app as ``simrec serve`` runs it (background loads: the version is built in a
loader process and memory-mapped, see ``simrec.serving.model_image``), the M-size model
with a catalog, ``--threads`` client threads (default 1, like a worker's one event loop)
sending the mixed requests of ``http_load.py`` in a closed loop. After ``--baseline``
seconds, LATEST moves to another complete version (written beforehand): the next request
that finds the check due wakes the loader thread, which has the version built aside and
swaps the reference; the run goes on ``--after`` seconds past the swap.

Reported: p50 / p99 / max of the requests that started while the new version was loading
(from the move of LATEST until the new version answered), against the same figures for
the requests before the move (the baseline, same run), and how long the load took.
Writes ``.bench/model_switch.json`` / ``.md``. Ratios, never asserts.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from common import cached_model, write_results  # noqa: E402
from http_load import TENANT, request_paths  # noqa: E402

from simrec import publishing, storage  # noqa: E402
from simrec.config import Settings  # noqa: E402
from simrec.core import layout  # noqa: E402
from simrec.core.snapshot import ModelSnapshot  # noqa: E402
from simrec.serving.api import ServingApp  # noqa: E402


def stats(samples: list[float]) -> dict[str, float]:
    a = np.array(samples) * 1e3
    return {"requests": len(a), "p50_ms": float(np.percentile(a, 50)),
            "p99_ms": float(np.percentile(a, 99)), "max_ms": float(a.max())}  # fmt: skip


def poll_until(deadline: float) -> None:
    while time.perf_counter() < deadline:
        time.sleep(0.001)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", type=float, default=10.0,
                        help="seconds of requests before LATEST moves")
    parser.add_argument("--after", type=float, default=5.0,
                        help="seconds of requests after the swap")
    parser.add_argument("--refresh", type=float, default=1.0,
                        help="seconds between LATEST checks (deployments: 60; each check is "
                             "a storage read in the loader thread, with its share of the GIL)")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="longest wait for the new version")
    parser.add_argument("--threads", type=int, default=1,
                        help="client threads (1: one event loop per worker, as served)")
    parser.add_argument("--quick", action="store_true", help="a 1-second baseline")
    args = parser.parse_args(argv)
    if args.quick:
        args.baseline, args.after = 1.0, 0.5

    _, base = cached_model("M")
    root = tempfile.mkdtemp(prefix="simrec-switch-")
    meta = {"tenant": TENANT}
    publishing.write_snapshot(root, TENANT, ModelSnapshot(
        **{**base.__dict__, "metadata": {**meta, "version": "sw-v1"}}))  # fmt: skip
    v2 = ModelSnapshot(**{**base.__dict__, "scores": base.scores * np.float32(0.5),
                          "metadata": {**meta, "version": "sw-v2"}})  # fmt: skip
    folder = layout.model_version(root, TENANT, "sw-v2")
    for name, content in v2.to_files().items():
        storage.write_bytes(layout.join(folder, name), content)

    settings = Settings(models_uri=root, tenant=TENANT, model_refresh_seconds=args.refresh,
                        max_n=100)  # fmt: skip
    app = ServingApp(settings, background_load=True)
    app.start()
    holder = app.holder
    paths = [p.partition("?")[::2] for p in request_paths(base, 4000)]
    for path, query in paths * 2:  # warm up: the version's lookups decoded once
        app.respond("GET", path, query)

    records: list[tuple[float, float, str]] = []  # (start, seconds, version answered)
    lock = threading.Lock()
    stop = threading.Event()

    def client(offset: int) -> None:
        out = []
        k = offset
        while not stop.is_set():
            path, query = paths[k % len(paths)]
            k += 1
            t0 = time.perf_counter()
            app.respond("GET", path, query)
            out.append((t0, time.perf_counter() - t0, holder.current.version))
        with lock:
            records.extend(out)

    threads = [threading.Thread(target=client, args=(i * 997,)) for i in range(args.threads)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    # The main thread polls (1 ms sleeps) in every phase alike, so the phases differ only
    # by the load.
    poll_until(time.perf_counter() + args.baseline)
    moved = time.perf_counter()
    storage.write_bytes(layout.latest_pointer(root, TENANT), b"sw-v2")
    deadline = moved + args.timeout
    while holder.current.version != "sw-v2" and time.perf_counter() < deadline:
        time.sleep(0.001)
    swapped = time.perf_counter()
    poll_until(swapped + args.after)
    stop.set()
    for t in threads:
        t.join()

    before = [s for t0, s, _ in records if t0 < moved]
    during = [s for t0, s, _ in records if moved <= t0 < swapped]
    after = [s for t0, s, _ in records if t0 >= swapped]
    result = {
        "threads": args.threads,
        "load_seconds": swapped - moved,
        "swapped": holder.current.version == "sw-v2",
        "baseline": stats(before),
        "during_switch": stats(during) if during else None,
        "after_switch": stats(after) if after else None,
    }
    ratio = (result["during_switch"]["p99_ms"] / result["baseline"]["p99_ms"]
             if during else float("nan"))  # fmt: skip
    result["p99_ratio"] = ratio

    def line(name: str, r: dict | None) -> str:
        if r is None:
            return f"| {name} | 0 | | | |"
        return (f"| {name} | {r['requests']:,} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} "
                f"| {r['max_ms']:.2f} |")  # fmt: skip

    md = "\n".join([
        "### Model switch under load (in process)",
        "",
        f"- M model with a catalog, {args.threads} client threads, mixed requests; LATEST "
        f"moved at {moved - started:.2f} s; the new version answered "
        f"{result['load_seconds'] * 1e3:.0f} ms later (built in a loader process, mapped)",
        "- the machine is shared (2 cores, other jobs running): compare within one run",
        "",
        "| requests | count | p50 ms | p99 ms | max ms |",
        "| --- | ---: | ---: | ---: | ---: |",
        line("before the switch (baseline)", result["baseline"]),
        line("while the new model loads", result["during_switch"]),
        line("after the swap", result["after_switch"]),
        "",
        f"- p99 during the switch / baseline p99: **{ratio:.2f}**",
        "",
    ])  # fmt: skip
    write_results("model_switch", result, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
