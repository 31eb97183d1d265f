"""Per-request scoring latency: our kernel vs the original pure-Python loop vs implicit.

On an M-size model (50k items, top-100 neighbors each) it times, for shopper histories
of 1, 10 and 100 items (top 10, input items excluded):

* ``kernel``: ``LoadedModel.scorer.score`` (the compiled kernel the endpoint calls);
* ``kernel+because``: the kernel's ``recommend`` (scores and ``because`` shares in one
  call, what the recommender asks for);
* ``request``: a whole ``/recommendations`` request in-process (``ServingApp.respond``:
  query parsing, sku lookups, scoring, because, catalog fields, the orjson body and its
  headers), no HTTP, in the steady state of a server: every sku of the histories and
  their answers looked up before (the string tables and catalog entries cache what
  they decode once per model version);
* ``request-first``: the same requests on their first sight (the pass that fills
  those caches: what a worker pays in the first minutes of a model version);
* ``python-dict``: a pure-Python dict loop like the original service's;
* ``implicit``: implicit's C++ ``NearestNeighboursScorer`` (skipped when not installed);
* ``datastore-cold`` / ``datastore-warm``: a ``/recommendations`` request with the
  Datastore backend against the Datastore emulator, with an empty cache (one
  ``get_multi`` per request) and with a warm one (skipped without the emulator).

Prints p50/p99 per request and the ratios against the baselines of the same run; writes
``.bench/serving.json`` and ``.bench/serving.md``. Run: ``python bench/serving.py``
(``--quick`` for fewer requests).
"""

from __future__ import annotations

import argparse
import heapq
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from common import (  # noqa: E402
    cached_model,
    histories,
    percentiles,
    time_calls,
    write_results,
)

from simrec.serving.model_holder import LoadedModel  # noqa: E402

SIZES = (1, 10, 100)
N = 10
WEIGHTS = (0.5, 2.0, 6.0)


def python_dict_model(model: LoadedModel) -> dict[str, list[tuple[str, float]]]:
    """The original service's shape: sku -> [(neighbor sku, score)] (as fetched)."""
    skus = model.snapshot.skus
    indptr, indices = model.snapshot.indptr.tolist(), model.snapshot.indices.tolist()
    scores = model.snapshot.scores.tolist()
    return {
        skus[i]: [(skus[indices[p]], scores[p]) for p in range(indptr[i], indptr[i + 1])]
        for i in range(len(skus))
    }


def python_dict_score(
    neighbors: dict[str, list[tuple[str, float]]], history: list[tuple[str, float]], n: int
) -> list[tuple[str, float]]:
    acc: dict[str, float] = {}
    seen = {sku for sku, _ in history}
    for sku, weight in history:
        for other, score in neighbors.get(sku, ()):
            if other not in seen:
                acc[other] = acc.get(other, 0.0) + weight * score
    return heapq.nlargest(n, acc.items(), key=lambda t: (t[1], t[0]))


def implicit_scorer(model: LoadedModel) -> tuple[Any, str]:
    try:
        import scipy.sparse as sp
        from implicit._nearest_neighbours import NearestNeighboursScorer
    except ImportError as exc:
        return None, f"implicit not installed ({exc}); pip install implicit==0.7.3"
    snap = model.snapshot
    n = snap.n_items
    sim = sp.csr_matrix((snap.scores, snap.indices, snap.indptr), shape=(n, n))
    import implicit

    return NearestNeighboursScorer(sim), f"implicit {implicit.__version__}"


def datastore_setup(model: LoadedModel, items: set[int]) -> tuple[Any, Any, str]:
    """Start the Datastore emulator and write the entities the histories need."""
    import tempfile

    try:  # the repository root is on sys.path (bench/common.py)
        from tests.cloud.emulators import DATASTORE, GcloudEmulator, missing_reason
    except ImportError as exc:
        return None, None, f"emulator helpers not importable: {exc}"
    reason = missing_reason(DATASTORE)
    if reason:
        return None, None, reason
    import os

    emulator = GcloudEmulator(DATASTORE, Path(tempfile.mkdtemp(prefix="simrec-ds-")))
    try:
        emulator.start()
    except BaseException as exc:  # pytest.skip outside pytest is an exception too
        return None, None, f"Datastore emulator did not start: {exc}"
    os.environ["DATASTORE_EMULATOR_HOST"] = emulator.host
    from google.cloud import datastore

    client = datastore.Client(project="simrec-bench", namespace="bench")
    snap = model.snapshot
    entities = []
    for i in sorted(items):
        cols, sims = snap.neighbors(i)
        entity = datastore.Entity(
            client.key("ItemNeighbors", snap.skus[i]), exclude_from_indexes=("items", "scores")
        )
        entity.update(
            {
                "items": [snap.skus[j] for j in cols.tolist()],
                "scores": sims.astype(np.float64).tolist(),
                "model_version": model.version,
            }
        )
        entities.append(entity)
    for start in range(0, len(entities), 400):
        client.put_multi(entities[start : start + 400])
    return emulator, client, f"Datastore emulator at {emulator.host}, {len(entities)} entities"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="M", choices=["S", "M", "L"])
    parser.add_argument("--requests", type=int, default=2000, help="per history size")
    parser.add_argument("--quick", action="store_true", help="fewer requests")
    parser.add_argument("--no-datastore", action="store_true")
    args = parser.parse_args(argv)
    count = 300 if args.quick else args.requests

    started = time.perf_counter()
    root, snapshot = cached_model(args.size)
    model = LoadedModel.from_snapshot(snapshot.version, snapshot)
    print(f"model {snapshot.version}: {model.n_items} items, {len(snapshot.indices)} edges "
          f"(ready in {time.perf_counter() - started:.1f}s)")
    skus = snapshot.skus
    rng = np.random.default_rng(7)
    dict_model = python_dict_model(model)
    implicit, implicit_note = implicit_scorer(model)

    from simrec.config import Settings
    from simrec.serving.api import ServingApp

    settings = Settings(models_uri=root, tenant=snapshot.metadata["tenant"], max_n=100,
                        max_skus_per_request=200)
    app = ServingApp(settings)
    assert app.holder.get() is not None

    rows: dict[str, dict[int, dict[str, float]]] = {}
    notes = {"implicit": implicit_note}
    workloads = {}
    for size in SIZES:
        hist = histories(model.n_items, size, count, seed=size)
        weights = [rng.choice(WEIGHTS, size=size).astype(np.float64) for _ in hist]
        items = [np.array(h, dtype=np.int32) for h in hist]
        workloads[size] = (hist, weights, items)
        results: dict[str, list[int]] = {}
        scorer = model.scorer
        calls = list(zip(items, weights, strict=True))
        results["kernel"] = time_calls(lambda q, w, s=scorer: s.score(q, w, N, q), calls)

        def with_because(q: np.ndarray, w: np.ndarray, scorer: Any = scorer) -> Any:
            return scorer.recommend(q, w, N, q, None, 3)

        results["kernel+because"] = time_calls(with_because, calls)
        queries = []
        for h, w in zip(hist, weights, strict=True):
            parts = {"browsed": [], "basket": [], "purchased": []}
            for i, wt in zip(h, w.tolist(), strict=True):
                name = {0.5: "browsed", 2.0: "basket", 6.0: "purchased"}[wt]
                parts[name].append(skus[i])
            queries.append(
                "&".join(f"{k}={','.join(v)}" for k, v in parts.items() if v) + f"&n={N}"
            )

        def request(qs: str) -> bytes:
            status, _, data = app.respond("GET", "/recommendations", qs)
            assert status == 200
            return data

        results["request-first"] = time_calls(request, [(q,) for q in queries])
        results["request"] = time_calls(request, [(q,) for q in queries])
        py_calls = [
            ([(skus[i], wt) for i, wt in zip(h, w.tolist(), strict=True)],)
            for h, w in zip(hist, weights, strict=True)
        ]
        py_calls = py_calls[: max(200, count // (1 if size < 100 else 4))]
        results["python-dict"] = time_calls(lambda hs: python_dict_score(dict_model, hs, N),
                                            py_calls)
        if implicit is not None:
            import scipy.sparse as sp

            user_rows = []
            for q, w in calls:
                order = np.argsort(q)  # a CSR row has sorted column indices
                m = sp.csr_matrix(
                    (w[order], q[order], np.array([0, len(q)], dtype=np.int32)),
                    shape=(1, model.n_items),
                )
                user_rows.append((m.indptr, m.indices, m.data))
            results["implicit"] = time_calls(
                lambda ip, ix, d: implicit.recommend(ip, ix, d, K=N, remove_own_likes=True),
                user_rows,
            )
            # Same answers (ties aside): the comparison is like for like.
            q, w = calls[0]
            ours = [j for j, _ in scorer.score(q, w, N, q)]
            theirs = implicit.recommend(*user_rows[0], K=N, remove_own_likes=True)[0].tolist()
            notes[f"implicit_agrees_{size}"] = str(ours == theirs)
        rows[size] = {name: percentiles(s) for name, s in results.items()}
        print(f"history {size:>3}: " + ", ".join(
            f"{k} p50 {v['p50_us']:.1f}us" for k, v in rows[size].items()))

    if not args.no_datastore:
        ds_rows, note = datastore_bench(model, workloads, settings, skus,
                                        min(count, 300))
        notes["datastore"] = note
        for size, r in ds_rows.items():
            rows[size].update(r)
    else:
        notes["datastore"] = "skipped (--no-datastore)"

    markdown = render(args.size, model, rows, notes)
    write_results("serving", {"size": args.size, "rows": rows, "notes": notes}, markdown)
    ok = check(rows, notes)
    return 0 if ok else 1


def datastore_bench(model, workloads, settings, skus, count) -> tuple[dict, str]:
    needed = {i for hist, _, _ in workloads.values() for h in hist[:count] for i in h}
    emulator, client, note = datastore_setup(model, needed)
    if emulator is None:
        return {}, f"skipped: {note}"
    try:
        from simrec.serving.api import ServingApp
        from simrec.serving.datastore_backend import DatastoreNeighbors, default_client_factory

        ds_settings = settings.model_copy(
            update={"serving_backend": "datastore", "datastore_project": "simrec-bench",
                    "datastore_namespace": "bench"}
        )
        store = DatastoreNeighbors(default_client_factory("simrec-bench"), 100_000, 3600)
        app = ServingApp(ds_settings, datastore=store)
        memory = ServingApp(settings)
        out: dict[int, dict[str, Any]] = {}
        for size, (hist, _, _) in workloads.items():
            queries = [
                f"browsed={','.join(skus[i] for i in h)}&n={N}" for h in hist[:count]
            ]

            def cold(qs: str) -> None:
                store.clear()
                (body, status), _ = app.dispatch("GET", "/recommendations", qs)
                assert status == 200

            def warm(qs: str) -> None:
                (body, status), _ = app.dispatch("GET", "/recommendations", qs)
                assert status == 200

            trips = store.round_trips
            cold_s = time_calls(cold, [(q,) for q in queries])
            trips = (store.round_trips - trips) / (len(queries) + min(50, len(queries)))
            for q in queries:  # fill the cache with every list these requests need
                warm(q)
            trips_before_warm = store.round_trips
            warm_s = time_calls(warm, [(q,) for q in queries])
            assert store.round_trips == trips_before_warm  # served from the cache alone
            same = all(
                app.dispatch("GET", "/recommendations", q)[0]
                == memory.dispatch("GET", "/recommendations", q)[0]
                for q in queries[:50]
            )
            out[size] = {
                "datastore-cold": {**percentiles(cold_s), "round_trips_per_request": trips,
                                   "same_as_memory": same},
                "datastore-warm": {**percentiles(warm_s), "same_as_memory": same},
            }
        return out, note
    finally:
        emulator.stop()


COLUMNS = ("kernel", "kernel+because", "request", "request-first", "python-dict", "implicit",
           "datastore-cold", "datastore-warm")


def render(size: str, model: LoadedModel, rows: dict, notes: dict) -> str:
    lines = [
        f"### Scoring latency per request ({size}: {model.n_items:,} items, "
        f"{len(model.snapshot.indices):,} edges, top {N})",
        "",
        "| history | " + " | ".join(f"{c} p50 / p99 (us)" for c in COLUMNS) + " |",
        "|---:|" + "---:|" * len(COLUMNS),
    ]
    for hsize, r in rows.items():
        cells = [
            f"{r[c]['p50_us']:.1f} / {r[c]['p99_us']:.1f}" if c in r else "n/a" for c in COLUMNS
        ]
        lines.append(f"| {hsize} | " + " | ".join(cells) + " |")
    lines += ["", "Ratios (p50, same run):", ""]
    for hsize, r in rows.items():
        k = r["kernel"]["p50_us"]
        parts = [f"request / kernel = {r['request']['p50_us'] / k:.1f}x",
                 f"request-first / kernel = {r['request-first']['p50_us'] / k:.1f}x",
                 f"python-dict / kernel = {r['python-dict']['p50_us'] / k:.1f}x"]
        if "implicit" in r:
            parts.append(f"implicit / kernel = {r['implicit']['p50_us'] / k:.2f}x")
        if "datastore-cold" in r:
            parts.append(
                f"datastore-cold / request = {r['datastore-cold']['p50_us'] / r['request']['p50_us']:.1f}x"  # noqa: E501
                f" ({r['datastore-cold']['round_trips_per_request']:.2f} get_multi per request,"
                f" same answers as memory: {r['datastore-cold']['same_as_memory']})"
            )
        lines.append(f"- history {hsize}: " + ", ".join(parts))
    lines += ["", "Notes: " + "; ".join(f"{k}: {v}" for k, v in notes.items()), ""]
    return "\n".join(lines)


def check(rows: dict, notes: dict) -> bool:
    """The issues' targets: faster than implicit at every size, >= 10x the loop at 10, a
    whole request at most 3x the kernel at 10 (issue 17.3)."""
    ok = True
    for hsize, r in rows.items():
        if "implicit" in r and not r["kernel"]["p50_us"] < r["implicit"]["p50_us"]:
            print(f"TARGET MISSED: kernel not faster than implicit at history {hsize}")
            ok = False
    if rows[10]["python-dict"]["p50_us"] / rows[10]["kernel"]["p50_us"] < 10:
        print("TARGET MISSED: kernel less than 10x faster than the Python loop at 10 items")
        ok = False
    if rows[10]["request"]["p50_us"] / rows[10]["kernel"]["p50_us"] > 3:
        print("TARGET MISSED: a request costs more than 3x the kernel at 10 items")
        ok = False
    print("targets met" if ok else "some targets missed")
    return ok


if __name__ == "__main__":
    sys.exit(main())
