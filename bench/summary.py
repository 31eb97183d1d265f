"""One summary table of every benchmark's figures and ratios (``.bench/summary.md``).

Each benchmark script writes ``.bench/<name>.json``; :data:`EXTRACTORS` turns each into
rows (benchmark, figure, value, baseline, ratio, target), every ratio against a baseline
measured in the same run. The issue's targets live here once (:data:`TARGETS`).
``bench/readme.py`` renders the README's performance tables from the summary.
Usage: ``python bench/summary.py [--out .bench/summary.md] [name ...]`` (``make bench``
runs it through ``bench/run_all.py``).
"""

from __future__ import annotations

import argparse
import json
import operator
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / ".bench"
COLUMNS = ("benchmark", "figure", "value", "baseline", "ratio", "target")

#: (benchmark, figure, baseline) -> (comparison, bound on the ratio figure / baseline,
#: where the target comes from).
TARGETS: dict[tuple[str, str, str], tuple[str, float, str]] = {
    ("similarity", "M: spark-broadcast", "mllib"): ("<=", 0.2, "issue 17.1"),
    ("similarity", "M: spark-broadcast similarity phase", "local"): ("<=", 5.0, "issue 17.1"),
    ("similarity", "L: local-exact", "implicit"): ("<=", 1.0, "issue 17.2"),
    **{("serving", f"kernel p50, {n}", "implicit"): ("<", 1.0, "serving.py")
       for n in ("1 item", "10 items", "100 items")},
    ("serving", "kernel p50, 10 items", "pure-Python loop"): ("<=", 0.1, "serving.py"),
    ("serving", "request p50, 10 items", "kernel"): ("<=", 3.0, "issue 17.3"),
    ("http_load", "production mixed throughput", "trivial endpoint"): (">=", 0.8, "issue 17.4"),
    ("dimsum_sampling", "emitted pairs", "exact"): ("<=", 0.3, "issue 15.1"),
    ("dimsum_sampling", "NDCG@10", "exact"): (">=", 0.98, "issue 15.1"),
}  # fmt: skip
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">=": operator.ge,
}


@dataclass(frozen=True)
class Row:
    """One figure; ``ratio`` = value / baseline_value when there is a baseline."""

    benchmark: str
    figure: str
    value: float
    unit: str
    baseline: str = ""
    baseline_value: float | None = None
    key: str = ""  # the figure's name in TARGETS, when not the figure itself

    @property
    def ratio(self) -> float | None:
        if not self.baseline_value:
            return None
        return self.value / self.baseline_value

    def target(self) -> str:
        spec = TARGETS.get((self.benchmark, self.key or self.figure, self.baseline))
        if spec is None or self.ratio is None:
            return ""
        op, bound, source = spec
        met = "met" if _OPS[op](self.ratio, bound) else "MISSED"
        return f"{op} {bound:g}x ({source}): {met}"

    def cells(self) -> list[str]:
        base = f"{self.baseline} {_fmt(self.baseline_value, self.unit)}" if self.baseline else ""
        ratio = "" if self.ratio is None else f"{self.ratio:.{2 if self.ratio >= 0.1 else 3}f}x"
        return [self.benchmark, self.figure, _fmt(self.value, self.unit), base, ratio,
                self.target()]  # fmt: skip


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return ""
    size = abs(value)
    digits = 3 if not unit and size <= 1 else 0 if size >= 100 else 2 if size < 10 else 1
    return f"{value:,.{digits}f} {unit}".strip()


# --- one extractor per benchmark, reading the JSON its script writes --------------------
def serving(res: dict[str, Any]) -> Iterator[Row]:
    for size, r in res["rows"].items():
        kernel = r["kernel"]["p50_us"]
        items = f"{size} item{'s' if str(size) != '1' else ''}"
        if "implicit" in r:
            yield Row("serving", f"kernel p50, {items}", kernel, "us", "implicit",
                      r["implicit"]["p50_us"])  # fmt: skip
        yield Row("serving", f"kernel p50, {items}", kernel, "us", "pure-Python loop",
                  r["python-dict"]["p50_us"])  # fmt: skip
        yield Row("serving", f"request p50, {items}", r["request"]["p50_us"], "us", "kernel",
                  kernel)  # fmt: skip
        if "request-first" in r:  # the requests' first sight: the string/entry caches fill
            yield Row("serving", f"request p50 (first sight), {items}",
                      r["request-first"]["p50_us"], "us", "kernel", kernel)  # fmt: skip
        for name in ("datastore-cold", "datastore-warm"):
            if name in r:
                yield Row("serving", f"{name} request p50, {items}", r[name]["p50_us"], "us",
                          "memory request", r["request"]["p50_us"])  # fmt: skip


def similarity(res: dict[str, Any]) -> Iterator[Row]:
    for one in res["results"]:
        size, runs = one["size"], {r["contender"]: r for r in one["runs"] if "seconds" in r}
        for key in one["ratios"]:
            if " similarity phase/" in key:
                name, base = key.split(" similarity phase/")
                value = runs[name]["phases"]["similarity_s"]
                figure = f"{size}: {name} similarity phase"
            else:
                name, base = key.split("/")
                value, figure = runs[name]["seconds"], f"{size}: {name}"
            yield Row("similarity", figure, value, "s", base, runs[base]["seconds"])
        for name, run in runs.items():
            if run.get("recall_at_10") is not None:
                yield Row("similarity", f"{size}: {name} recall@10", run["recall_at_10"], "")


def http_load(res: dict[str, Any]) -> Iterator[Row]:
    prod = res.get("production_server")
    for server, phases in res.get("results", {}).items():
        mixed, trivial = phases["mixed"], phases["trivial"]
        yield Row("http_load", f"{server} mixed throughput", mixed["requests_per_s"], "req/s",
                  "trivial endpoint", trivial["requests_per_s"],
                  key="production mixed throughput" if server == prod else "")  # fmt: skip
        yield Row("http_load", f"{server} mixed p99", mixed["p99_us"] / 1000, "ms")
        if server == prod and "switch" in phases:
            yield Row("http_load", f"{server} p99 with model switches",
                      phases["switch"]["p99_us"] / 1000, "ms", "without",
                      mixed["p99_us"] / 1000)  # fmt: skip
        elif server != prod and prod in res["results"]:
            yield Row("http_load", f"{server} mixed throughput vs {prod}",
                      mixed["requests_per_s"], "req/s", prod,
                      res["results"][prod]["mixed"]["requests_per_s"])  # fmt: skip


def model_switch(res: dict[str, Any]) -> Iterator[Row]:
    if res.get("during_switch"):
        yield Row("model_switch", "p99 while the new model loads",
                  res["during_switch"]["p99_ms"], "ms", "before the switch",
                  res["baseline"]["p99_ms"])  # fmt: skip


def dimsum_sampling(res: dict[str, Any]) -> Iterator[Row]:
    """The default variant at the default threshold, per dataset, against exact."""
    t = res["default_threshold"]
    for r in res["rows"]:
        if r["threshold"] != t or r["variant"] != "cap p50":
            continue
        name = f"{r['dataset']} t={t:g}"
        yield Row("dimsum_sampling", f"{name}: emitted pairs", r["emitted"], "", "exact",
                  r["emitted_exact"], key="emitted pairs")  # fmt: skip
        yield Row("dimsum_sampling", f"{name}: NDCG@10", r["ndcg"], "", "exact",
                  r["ndcg_exact"], key="NDCG@10")  # fmt: skip
        yield Row("dimsum_sampling", f"{name}: recall@10 of the true neighbors",
                  r["recall10_nbrs"], "")  # fmt: skip


#: In the order of the summary and the README's tables.
EXTRACTORS: dict[str, Callable[[dict[str, Any]], Iterator[Row]]] = {
    "similarity": similarity,
    "serving": serving,
    "http_load": http_load,
    "model_switch": model_switch,
    "dimsum_sampling": dimsum_sampling,
}


def collect(folder: Path = OUT, names: list[str] | None = None) -> list[Row]:
    """Rows of every benchmark (of ``names``) that wrote its JSON (a skipped one: none)."""
    rows: list[Row] = []
    for name, extract in EXTRACTORS.items():
        path = folder / f"{name}.json"
        if names is not None and name not in names:
            continue
        if path.exists():
            res = json.loads(path.read_text())
            rows += list(extract(res))
            if "machine" in res:  # 2 shared cores: how quiet the machine was matters
                load = res["machine"]["load_avg"][0]
                rows.append(Row(name, "machine load average (1 min) when written", load, ""))
    return rows


def render(rows: list[list[str]]) -> str:
    """The summary table (``rows``: cells in :data:`COLUMNS` order)."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|---|---|---:|---|---:|---|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines) + "\n"


def parse(text: str) -> list[list[str]]:
    """The rows of a summary table written by :func:`render`."""
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == len(COLUMNS) and cells[0] != COLUMNS[0] and not set(line) <= set("|-: "):
            rows.append(cells)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=Path, default=OUT, help="folder of <name>.json")
    parser.add_argument("--out", type=Path, default=OUT / "summary.md")
    parser.add_argument("names", nargs="*", help="only these benchmarks (default: all)")
    args = parser.parse_args(argv)
    rows = collect(args.results, args.names or None)
    if not rows:
        print(f"no benchmark results in {args.results}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render([r.cells() for r in rows]))
    print(f"wrote {args.out} ({len(rows)} figures)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
