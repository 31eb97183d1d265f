"""A self-contained HTML report of an evaluation: inline SVG plots and tables.

No script, no stylesheet or font from the network: the file opens in any browser offline.
Every plot is a ``<figure class="plot" id="plot-...">`` holding one ``<svg>``; every
table a ``<table id="table-...">`` (the ids are listed in :data:`PLOTS` / :data:`TABLES`,
which the Chromium test checks).
"""

from __future__ import annotations

import html
import math
from typing import Any

from simrec.evaluation.metrics import interval_side

PLOTS = {
    "plot-threshold-metrics": "Accuracy vs DIMSUM threshold",
    "plot-threshold-pairs": "Emitted pairs vs DIMSUM threshold",
    "plot-weightings": "NDCG per action weighting",
    "plot-features": "NDCG per quality feature",
    "plot-score-distribution": "Distribution of neighbor scores",
}
TABLES = {
    "table-summary": "Models",
    "table-intervals": "Bootstrap confidence intervals",
    "table-comparison": "Configured model minus the best peer (paired bootstrap)",
    "table-thresholds": "DIMSUM thresholds",
    "table-weightings": "Action weightings",
    "table-features": "Quality features",
    "table-split": "Split and protocol",
    "table-config": "Configured model",
    "table-tuning": "Nightly tuning: the candidates on the held-out last days of training",
}
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf")
W, H = 720, 320
ML, MR, MT, MB = 64, 190, 28, 48  # margins: left, right (legend), top, bottom

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;
max-width:980px;color:#222;padding:0 1rem}
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.85rem}
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f4f4f4}
tr.best td{font-weight:bold}figure{margin:1rem 0}figcaption{font-size:.85rem;color:#555}
svg{background:#fff;border:1px solid #eee}svg text{font-size:11px;fill:#333}
.note{color:#555;font-size:.9rem}.scroll{overflow-x:auto}
"""


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4f}"
    return str(value)


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1.0
    step = 10 ** math.floor(math.log10((hi - lo) / n))
    for mult in (1, 2, 5, 10):
        if (hi - lo) / (step * mult) <= n:
            step *= mult
            break
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def _tick_label(v: float) -> str:
    if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
        return f"{v:.0e}"
    return f"{v:g}"


class _Axes:
    """Linear (or log10) y, linear x, in a W x H plot area with a legend on the right."""

    def __init__(self, xs: list[float], ys: list[float], log_y: bool = False) -> None:
        self.log_y = log_y
        ys = [y for y in ys if y is not None and not (isinstance(y, float) and math.isnan(y))]
        if log_y:
            ys = [math.log10(max(y, 1.0)) for y in ys]
        self.x0, self.x1 = (min(xs), max(xs)) if xs else (0.0, 1.0)
        if self.x1 == self.x0:
            self.x0, self.x1 = self.x0 - 0.5, self.x1 + 0.5
        lo = min(ys) if ys else 0.0
        hi = max(ys) if ys else 1.0
        self.y0 = min(0.0, lo) if not log_y else math.floor(lo)
        self.y1 = hi * 1.1 if hi > 0 else 1.0
        if log_y:
            self.y1 = max(math.ceil(hi + 1e-9), self.y0 + 1)

    def x(self, v: float) -> float:
        return ML + (v - self.x0) / (self.x1 - self.x0) * (W - ML - MR)

    def y(self, v: float) -> float:
        if self.log_y:
            v = math.log10(max(v, 1.0))
        return H - MB - (v - self.y0) / (self.y1 - self.y0) * (H - MT - MB)

    def frame(self, xlabel: str, ylabel: str, xticks: list[float] | None = None) -> list[str]:
        out = [
            f'<line x1="{ML}" y1="{H - MB}" x2="{W - MR}" y2="{H - MB}" stroke="#333"/>',
            f'<line x1="{ML}" y1="{MT}" x2="{ML}" y2="{H - MB}" stroke="#333"/>',
        ]
        yt = (
            [float(e) for e in range(int(self.y0), int(self.y1) + 1)]
            if self.log_y
            else _ticks(self.y0, self.y1)
        )
        for t in yt:
            label = _tick_label(10**t) if self.log_y else _tick_label(t)
            yy = H - MB - (t - self.y0) / (self.y1 - self.y0) * (H - MT - MB)
            out.append(
                f'<line x1="{ML - 4}" y1="{yy:.1f}" x2="{W - MR}" y2="{yy:.1f}" stroke="#eee"/>'
                f'<text x="{ML - 6}" y="{yy + 4:.1f}" text-anchor="end">{label}</text>'
            )
        for t in xticks if xticks is not None else _ticks(self.x0, self.x1):
            xx = self.x(t)
            out.append(
                f'<line x1="{xx:.1f}" y1="{H - MB}" x2="{xx:.1f}" y2="{H - MB + 4}" stroke="#333"/>'
                f'<text x="{xx:.1f}" y="{H - MB + 16}" text-anchor="middle">{_tick_label(t)}</text>'
            )
        out.append(
            f'<text x="{(ML + W - MR) / 2:.0f}" y="{H - 10}" text-anchor="middle">'
            f"{_esc(xlabel)}</text>"
            f'<text transform="translate(14 {(MT + H - MB) / 2:.0f}) rotate(-90)" '
            f'text-anchor="middle">{_esc(ylabel)}</text>'
        )
        return out


def _legend(names: list[str], dashed: set[str] = frozenset()) -> list[str]:
    out = []
    for i, name in enumerate(names):
        y = MT + 8 + i * 18
        dash = ' stroke-dasharray="5 3"' if name in dashed else ""
        out.append(
            f'<line x1="{W - MR + 10}" y1="{y}" x2="{W - MR + 30}" y2="{y}" '
            f'stroke="{COLORS[i % len(COLORS)]}" stroke-width="2"{dash}/>'
            f'<text x="{W - MR + 35}" y="{y + 4}" class="legend">{_esc(name)}</text>'
        )
    return out


def _svg(title: str, body: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
        f'viewBox="0 0 {W} {H}" role="img" aria-label="{_esc(title)}">'
        f"<title>{_esc(title)}</title>" + "".join(body) + "</svg>"
    )


def line_chart(
    series: dict[str, list[tuple[float, float]]],
    title: str,
    xlabel: str,
    ylabel: str,
    references: dict[str, float] | None = None,
    log_y: bool = False,
) -> str:
    """Lines with point markers; ``references`` are dashed horizontal lines."""
    references = references or {}
    xs = [x for pts in series.values() for x, _ in pts]
    ys = [y for pts in series.values() for _, y in pts] + list(references.values())
    ax = _Axes(xs, ys, log_y)
    body = ax.frame(xlabel, ylabel, sorted(set(xs)) if len(set(xs)) <= 8 else None)
    names = list(series) + list(references)
    for i, (name, pts) in enumerate(series.items()):
        color = COLORS[i % len(COLORS)]
        path = " ".join(f"{ax.x(x):.1f},{ax.y(y):.1f}" for x, y in pts)
        body.append(
            f'<polyline class="series" data-name="{_esc(name)}" points="{path}" fill="none" '
            f'stroke="{color}" stroke-width="2"/>'
        )
        body += [
            f'<circle class="point" cx="{ax.x(x):.1f}" cy="{ax.y(y):.1f}" r="3" fill="{color}">'
            f"<title>{_esc(name)}: {_fmt(y)} at {x:g}</title></circle>"
            for x, y in pts
        ]
    for j, (name, value) in enumerate(references.items()):
        color = COLORS[(len(series) + j) % len(COLORS)]
        body.append(
            f'<line class="reference" x1="{ML}" y1="{ax.y(value):.1f}" x2="{W - MR}" '
            f'y2="{ax.y(value):.1f}" stroke="{color}" stroke-width="2" stroke-dasharray="5 3">'
            f"<title>{_esc(name)}: {_fmt(value)}</title></line>"
        )
    body += _legend(names, set(references))
    return _svg(title, body)


def bar_chart(
    groups: list[str], series: dict[str, list[float]], title: str, ylabel: str
) -> str:
    """Grouped vertical bars: one group per label, one bar per series."""
    ys = [v for values in series.values() for v in values]
    ax = _Axes([0.0, float(len(groups))], ys)
    body = ax.frame("", ylabel, xticks=[])
    n = max(1, len(series))
    slot = (W - ML - MR) / max(1, len(groups))
    bar = slot * 0.8 / n
    for g, label in enumerate(groups):
        x0 = ML + g * slot + slot * 0.1
        for s, (name, values) in enumerate(series.items()):
            v = values[g]
            if v is None or (isinstance(v, float) and math.isnan(v)):
                continue
            top = ax.y(v)
            body.append(
                f'<rect class="bar" x="{x0 + s * bar:.1f}" y="{top:.1f}" width="{bar - 1:.1f}" '
                f'height="{H - MB - top:.1f}" fill="{COLORS[s % len(COLORS)]}">'
                f"<title>{_esc(label)} / {_esc(name)}: {_fmt(v)}</title></rect>"
            )
        body.append(
            f'<text x="{ML + (g + 0.5) * slot:.1f}" y="{H - MB + 14}" text-anchor="middle" '
            f'font-size="10">{_esc(label.split(" (")[0][:22])}</text>'
        )
    body += _legend(list(series))
    return _svg(title, body)


def _table(table_id: str, header: list[str], rows: list[list[Any]], best: int | None = None) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cls = ' class="best"' if i == best else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{_esc(_fmt(v))}</td>" for v in row) + "</tr>")
    return (
        f'<table id="{table_id}"><caption>{_esc(TABLES[table_id])}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def _figure(plot_id: str, svg: str, caption: str) -> str:
    caption = f"<figcaption>{_esc(caption)}</figcaption>"
    return f'<figure class="plot" id="{plot_id}">{svg}{caption}</figure>'


def format_interval(bounds: Any) -> str:
    """``[low, high]`` as text; ``-`` when there is none."""
    if not bounds or bounds[0] is None or bounds[1] is None:
        return "-"
    return f"[{bounds[0]:.4f}, {bounds[1]:.4f}]"


METRIC_COLUMNS = ("ndcg", "hit_rate", "precision", "recall", "map", "coverage", "mean_popularity")


def _held_out(split: dict[str, Any]) -> str:
    """What the split held out and trained on, in one sentence."""
    if split.get("protocol") == "per-user":
        return (
            f"Each user's last {split['holdout_events']} event(s) held out (per-user split), "
            f"trained on every other event from {split['train_start']} to {split['end_date']}"
        )
    return (
        f"Held out {split['split_date']} to {split['end_date']}; "
        f"trained on {split['train_start']} to the day before"
    )


def _tuning(record: dict[str, Any] | None, k: int) -> list[str]:
    """The tuning section: every candidate's validation metrics, the choice, and how the
    chosen model did on the test split against the configured one."""
    if record is None:
        return [_table("table-tuning", ["", "value"], [["tuning", "off (tune_holdout_days = 0)"]]),
                '<p class="note">Set tune_holdout_days to see the choice a nightly run would '
                "make (simrec/evaluation/nightly.py).</p>"]  # fmt: skip
    rows = [
        [", ".join(f"{n}={v:g}" for n, v in c["changes"].items()) or "configured",
         *[c["metrics"][m] for m in ("ndcg", "hit_rate", "recall", "coverage")]]
        for c in record["candidates"]
    ]  # fmt: skip
    chosen = next((i for i, c in enumerate(record["candidates"])
                   if c["changes"] == record["chosen"]["changes"]), None)  # fmt: skip
    table = _table("table-tuning", ["candidate", *[f"validation {m}@{k}" for m in
                                                 ("ndcg", "hit_rate", "recall", "coverage")]],
                   rows, chosen)  # fmt: skip
    note = f"{record['status']}: {record['reason']}."
    if record.get("validation"):
        v = record["validation"]
        d = v["vs_configured"]
        note += (
            f" Chosen: validation NDCG@{k} {v['metrics']['ndcg']:.4f} "
            f"{format_interval(v['intervals']['ndcg'])}, minus the configured model "
            f"{d['difference']:+.4f} {format_interval([d['low'], d['high']])}."
        )
    test = record.get("test_vs_configured")
    if test:
        note += (
            f" On this report's test split, tuned minus configured NDCG@{k}: "
            f"{test['difference']:+.4f} {format_interval([test['low'], test['high']])} "
            f"({interval_side(test['low'], test['high'])})."
        )
    return [table, f'<p class="note">{_esc(note)}</p>']


def render(result: dict[str, Any], title: str = "simrec offline evaluation") -> str:
    """The report of a :func:`simrec.evaluation.evaluate.run_evaluation` result."""
    k = result["k"]
    models = result["models"]
    head = ["model", *[f"{m}@{k}" for m in METRIC_COLUMNS], "emitted pairs"]
    rows = [
        [name, *[m["metrics"][c] for c in METRIC_COLUMNS], m.get("emitted_pairs")]
        for name, m in models.items()
    ]
    best = max(range(len(rows)), key=lambda i: rows[i][1]) if rows else None
    summary = _table("table-summary", head, rows, best)
    intervals = _table(
        "table-intervals",
        ["model", *[f"{m}@{k}" for m in METRIC_COLUMNS]],
        [[name, *[format_interval(m.get("intervals", {}).get(c)) for c in METRIC_COLUMNS]]
         for name, m in models.items()],  # fmt: skip
    )
    comparison = result.get("comparison")
    compare_table = _table(
        "table-comparison",
        ["metric", "configured", f"best peer: {comparison['best_peer']}" if comparison else "-",
         "difference", "interval", "interval of the difference"],
        [
            [f"{c}@{k}", models["configured"]["metrics"][c],
             models[comparison["best_peer"]]["metrics"][c], d["difference"],
             format_interval([d["low"], d["high"]]), interval_side(d["low"], d["high"])]
            for c in METRIC_COLUMNS
            for d in [comparison["differences"][c]]
        ] if comparison else [],
    )
    skipped = result.get("skipped_peers") or {}
    skipped_note = "".join(
        f'<p class="note">Peer {_esc(name)} skipped: {_esc(reason)}.</p>'
        for name, reason in skipped.items()
    )

    sweep = result["thresholds"]
    ts = [s["threshold"] for s in sweep]
    refs = {
        f"popularity NDCG@{k}": models["popularity"]["metrics"]["ndcg"],
        f"plain cosine NDCG@{k}": models["cosine"]["metrics"]["ndcg"],
    }
    thr_plot = line_chart(
        {
            f"{name}@{k}": [(t, s["metrics"][name]) for t, s in zip(ts, sweep, strict=True)]
            for name in ("ndcg", "recall", "hit_rate")
        },
        "Accuracy vs DIMSUM threshold",
        "DIMSUM threshold (0 = exact)",
        "metric",
        refs,
    )
    pairs_plot = line_chart(
        {"emitted pairs": [(t, float(s["emitted_pairs"])) for t, s in zip(ts, sweep, strict=True)]},
        "Emitted pairs vs DIMSUM threshold",
        "DIMSUM threshold (0 = exact)",
        "pairs emitted (log scale)",
        log_y=True,
    )
    thr_table = _table(
        "table-thresholds",
        ["threshold", "gamma", "emitted pairs", "pairs", f"ndcg@{k}", f"recall@{k}", "fit s"],
        [
            [s["threshold"], s["gamma"], s["emitted_pairs"], s["pairs"], s["metrics"]["ndcg"],
             s["metrics"]["recall"], s["fit_s"]]
            for s in sweep
        ],
    )

    wts = result["weightings"]
    w_plot = bar_chart(
        [w["name"] for w in wts],
        {f"ndcg@{k}": [w["metrics"]["ndcg"] for w in wts],
         f"recall@{k}": [w["metrics"]["recall"] for w in wts]},
        "NDCG per action weighting",
        "metric",
    )
    w_table = _table(
        "table-weightings",
        ["weighting", "browsed", "basket", "purchase", f"ndcg@{k}", f"recall@{k}",
         f"hit_rate@{k}"],
        [
            [w["name"], w["weights"]["browsed"], w["weights"]["basket"], w["weights"]["purchase"],
             w["metrics"]["ndcg"], w["metrics"]["recall"], w["metrics"]["hit_rate"]]
            for w in wts
        ],
    )

    feats = result["features"]
    names = list(dict.fromkeys(f["feature"] for f in feats))
    f_plot = bar_chart(
        names,
        {
            variant: [
                next(f["metrics"]["ndcg"] for f in feats
                     if f["feature"] == n and f["variant"] == variant)
                for n in names
            ]
            for variant in ("cosine + feature", "configured - feature")
        },
        "NDCG per quality feature",
        f"ndcg@{k}",
    )
    f_table = _table(
        "table-features",
        ["feature", "variant", "half-life d", "user weighting", "alpha", "shrinkage",
         f"ndcg@{k}", f"recall@{k}", f"coverage@{k}"],
        [
            [f["feature"], f["variant"], f["config"]["half_life_days"],
             f["config"]["user_weighting"], f["config"]["user_alpha"], f["config"]["shrinkage"],
             f["metrics"]["ndcg"], f["metrics"]["recall"], f["metrics"]["coverage"]]
            for f in feats
        ],
    )

    dist = result["score_distribution"]
    centers = [(a + b) / 2 for a, b in zip(dist["bins"][:-1], dist["bins"][1:], strict=True)]
    d_plot = line_chart(
        {
            "plain cosine": list(zip(centers, map(float, dist["cosine"]), strict=True)),
            "configured": list(zip(centers, map(float, dist["configured"]), strict=True)),
        },
        "Distribution of neighbor scores",
        "neighbor score",
        "neighbor entries (log scale)",
        log_y=True,
    )

    split = {**result["split"], **result["protocol"]}
    s_table = _table("table-split", ["", "value"], [[key, v] for key, v in split.items()])
    config = dict(result["config"])
    weights = config.pop("weights")
    c_table = _table(
        "table-config",
        ["setting", "value"],
        [[f"weight_{a}", v] for a, v in weights.items()] + [[key, v] for key, v in config.items()],
    )
    cfg = models["configured"]["metrics"]
    verdict = (
        f"Configured model NDCG@{k} {cfg['ndcg']:.4f} vs plain cosine "
        f"{models['cosine']['metrics']['ndcg']:.4f} and popularity "
        f"{models['popularity']['metrics']['ndcg']:.4f}."
    )
    if comparison:
        d = comparison["differences"]["ndcg"]
        verdict += (
            f" Against the best peer ({comparison['best_peer']}): NDCG@{k} difference "
            f"{d['difference']:+.4f}, {comparison['level']:.0%} interval "
            f"{format_interval([d['low'], d['high']])} over {comparison['resamples']:,} "
            "resamples of the users."
        )
    sampled = " (a seeded sample)" if result["protocol"].get("sampled") else ""
    emitted = {s["emitted_pairs"] for s in sweep}
    pairs_caption = "Products emitted by the sample: the work DIMSUM saves."
    if len(emitted) == 1:
        pairs_caption += (
            " Here every threshold emitted every product: no entry was small enough against"
            " its item's norm to be sampled, so this shop is computed exactly"
            " (docs/scaling.md)."
        )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_esc(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{_esc(title)}</h1>",
        f'<p class="note">{_esc(_held_out(split))}; '
        f"{_fmt(split['users_evaluated'])} users evaluated{sampled}, k = {k}. "
        f"{_esc(verdict)}</p>",
        "<h2>Models</h2>",
        summary,
        skipped_note,
        '<p class="note">Peers: simrec/evaluation/peers.py. Intervals: percentile bootstrap '
        "over the evaluated users, the same seeded resamples for every model; the "
        "comparison is paired (per resample, configured minus best peer, the peer with the "
        "highest NDCG).</p>",
        compare_table,
        intervals,
        "<h2>DIMSUM sampling</h2>",
        _figure("plot-threshold-metrics", thr_plot,
                "Accuracy of the configured model at each DIMSUM threshold; dashed: baselines."),
        _figure("plot-threshold-pairs", pairs_plot, pairs_caption),
        thr_table,
        "<h2>Action weightings</h2>",
        _figure("plot-weightings", w_plot, "The configured model with each action weighting."),
        w_table,
        "<h2>Quality features</h2>",
        _figure("plot-features", f_plot,
                "Each feature added to plain cosine, and removed from the configured model."),
        f_table,
        "<h2>Nightly tuning</h2>",
        *_tuning(result.get("tuning"), k),
        "<h2>Neighbor scores</h2>",
        _figure("plot-score-distribution", d_plot,
                "Histogram of the neighbor scores kept (top-K per item), 20 bins on [0, 1]."),
        "<h2>Split, protocol and configuration</h2>",
        s_table,
        c_table,
        '<p class="note">Metric definitions: simrec/evaluation/metrics.py; protocol: '
        "docs/evaluation.md.</p>",
        "</body></html>",
    ]
    return "\n".join(parts)
