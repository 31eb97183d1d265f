"""``make demo``: a generated shop through the whole nightly pipeline, then served.

Generates a deterministic shop (about a million events) and its catalog (with a few new
items no event names yet, ``simrec.generate.shop_catalog``), runs export -> DIMSUM ->
load through the same handlers the cloud runs, starts the HTTP endpoint on localhost
with the production server, prints one example answer of each endpoint (a new item's
``/similar`` and ``/recommendations`` from its attributes among them) and a summary.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

from simrec.local.runner import (
    Workdir,
    default_run_date,
    local_settings,
    prepare,
    print_summary,
    run_pipeline,
)

NEW_ITEMS = 5  # catalog-only items of the demo shop


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(base: str, path: str, **query: Any) -> dict:
    url = f"{base}{path}?{urllib.parse.urlencode(query)}"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as err:
        return json.loads(err.read())


def _wait_healthy(base: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode}")
        try:
            if _get(base, "/healthz").get("status") == "ok":
                return
        except (urllib.error.URLError, ConnectionError, json.JSONDecodeError):
            pass
        time.sleep(0.3)
    raise RuntimeError("the server did not become healthy in time")


def _sample_shoppers(events: pd.DataFrame, count: int = 3) -> list[dict[str, str]]:
    """Recent histories of a few active shoppers, as a shop page would send them."""
    recent = events.sort_values("ts").groupby("user_id").tail(6)
    active = recent["user_id"].value_counts()
    shoppers = []
    for user in active.index[:count]:
        rows = recent[recent["user_id"] == user]
        query = {}
        for action, param in (("browsed", "browsed"), ("basket", "basket"),
                              ("purchase", "purchased")):
            skus = rows.loc[rows["action"] == action, "sku"].unique()[:4]
            if len(skus):
                query[param] = ",".join(skus)
        shoppers.append({"user": user, **query})
    return shoppers


def _bought_item(events: pd.DataFrame) -> str:
    """The sku in the most multi-item orders (a log without orders: the most popular)."""
    if "order_id" in events:
        orders = events.dropna(subset=["order_id"]).drop_duplicates(["order_id", "sku"])
        sizes = orders.groupby("order_id")["sku"].transform("size")
        counts = orders.loc[sizes >= 2, "sku"].value_counts()
        if len(counts):
            return str(counts.index[0])
    return str(events["sku"].value_counts().index[0])


def _items_table(title: str, items: list[dict], key: str = "sku") -> Table:
    """Rank, sku and score of each item, and its ``reason`` where the answer has one."""
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right")
    table.add_column(key)
    table.add_column("score", justify="right")
    reasons = any("reason" in item for item in items)
    if reasons:
        table.add_column("reason")
    for rank, item in enumerate(items, 1):
        cells = [str(rank), item[key], f"{item['score']:.3f}"]
        table.add_row(*cells, *([item.get("reason", "")] if reasons else []))
    return table


def run_demo(root: Path, n_events: int, serve_forever: str = "auto") -> int:
    from simrec.generate import (
        NEW_SKU_PREFIX,
        default_sizes,
        generate_events,
        shop_catalog,
        write_events,
    )

    console = Console()
    workdir = Workdir(root)
    workdir.root.mkdir(parents=True, exist_ok=True)
    events_path = workdir.root / f"events-{n_events}.parquet"
    console.rule("[bold]1. a synthetic shop")
    if events_path.exists():
        events = pd.read_parquet(events_path)
        console.print(f"reusing {events_path}")
    else:
        with console.status(f"generating {n_events:,} events"):
            events = generate_events(n_events=n_events, seed=42)
            write_events(events, str(events_path))
    console.print(
        f"{len(events):,} events, {events['user_id'].nunique():,} shoppers, "
        f"{events['sku'].nunique():,} products, "
        f"{events['ts'].min():%Y-%m-%d} .. {events['ts'].max():%Y-%m-%d}"
    )

    # The shop's catalog: its items' attributes and a few new items no event names yet.
    catalog_path = workdir.root / f"catalog-{n_events}.parquet"
    if not catalog_path.exists():
        _, n_items, n_categories = default_sizes(n_events)
        shop_catalog(n_items, n_categories, seed=42, new_items=NEW_ITEMS).to_parquet(
            catalog_path, index=False
        )
    console.print(f"catalog {catalog_path.name}: every product and {NEW_ITEMS} new ones "
                  f"({NEW_SKU_PREFIX}...) without events yet")  # fmt: skip

    console.rule("[bold]2. the nightly pipeline (same handlers as on Google Cloud)")
    settings = local_settings(
        workdir, events_source=str(events_path), catalog_uri=str(catalog_path)
    )
    newest = events["ts"].max().date()
    params = prepare(settings, default_run_date(newest, newest))
    workdir.log.parent.mkdir(parents=True, exist_ok=True)
    from simrec import logs

    with logs.redirected(str(workdir.log)):
        summary = run_pipeline(settings, params, console=console)
    workdir.summary.write_text(json.dumps(summary, indent=2, sort_keys=True))

    console.rule("[bold]3. the recommendation endpoint")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "simrec.cli", "serve", "--workdir", str(workdir.root),
         "--port", str(port), "--threads", "8"],
        start_new_session=True,
    )
    try:
        _wait_healthy(base, proc)
        health = _get(base, "/healthz")
        console.print(f"serving {base}  model {health.get('model_version')}  "
                      f"({health.get('items'):,} items)")
        for shopper in _sample_shoppers(events):
            query = {k: v for k, v in shopper.items() if k != "user"}
            started = time.perf_counter()
            body = _get(base, "/recommendations", n=5, **query)
            ms = (time.perf_counter() - started) * 1000
            console.print(f"\n[bold]shopper {shopper['user']}[/]  "
                          + "  ".join(f"{k}={v}" for k, v in query.items()))
            console.print(f"GET /recommendations?{urllib.parse.urlencode({**query, 'n': 5})}"
                          f"  ({ms:.1f} ms round trip)")
            console.print(_items_table("recommended", body["items"]))
        top = events["sku"].value_counts().index[0]
        console.print(_items_table(f"GET /similar?sku={top}&n=5",
                                   _get(base, "/similar", sku=top, n=5)["items"]))
        basket = _bought_item(events)
        console.print(_items_table(f"GET /bought-together?sku={basket}&n=5 (same orders)",
                                   _get(base, "/bought-together", sku=basket, n=5)["items"]))
        console.print(_items_table("GET /trending?n=5 (score: growth of the last days)",
                                   _get(base, "/trending", n=5)["items"]))
        new = f"{NEW_SKU_PREFIX}000"  # a new item: neighbors from its attributes
        console.print(_items_table(f"GET /similar?sku={new}&n=5 (a new item, no events yet)",
                                   _get(base, "/similar", sku=new, n=5)["items"]))  # fmt: skip
        cold = _get(base, "/recommendations", browsed=new, n=5)
        console.print(_items_table(f"GET /recommendations?browsed={new}&n=5 (fallback "
                                   f"{str(cold['fallback']).lower()})", cold["items"]))
        legacy = _get(base, "/make_recommendation", browsed=top, n=3)
        console.print(f"GET /make_recommendation?browsed={top}&n=3 -> {json.dumps(legacy)}")
        prefix = top[: max(1, len(top) - 2)]  # skus sharing all but its last 2 characters
        found = _get(base, "/items", q=prefix, n=3)
        console.print(f"GET /items?q={prefix}&n=3 -> {found['matches']} matches, first "
                      + ", ".join(it["sku"] for it in found["items"]))
        run = _get(base, "/runs/latest")
        pairs = (run["similarities"] or {}).get("counts", {}).get("pairs")
        console.print(f"GET /runs/latest -> model {run['model_version']}, {pairs} pairs, "
                      f"report {run['report']}")
        doc = _get(base, "/openapi.json")
        console.print(f"GET /openapi.json -> OpenAPI {doc['openapi']}, "
                      f"{len(doc['paths'])} paths: " + " ".join(sorted(doc["paths"])))
        console.print(f"the page: {base}/ui  (search, neighbors, basket, the run's summary)")

        console.rule("[bold]4. summary")
        print_summary(summary, console)
        console.print(f"summary JSON: {workdir.summary}")
        keep = serve_forever == "yes" or (serve_forever == "auto" and sys.stdin.isatty())
        if keep:
            console.print(f"\n[bold green]serving on {base}[/]  open {base}/ui or try: curl "
                          f"'{base}/recommendations?browsed={top}&n=5'   (Ctrl-C to stop)")
            proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
    return 0
