"""The HTML report rendered by headless Chromium: every plot and table is there, and the
page loads nothing from the network. Skips (with the reason) where Chromium is absent:
``.ci/run`` installs Debian's ``chromium`` when apt is available."""

from __future__ import annotations

import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from simrec.config import Settings
from simrec.evaluation.evaluate import run_evaluation
from simrec.evaluation.report import PLOTS, TABLES, render
from simrec.evaluation.split import temporal_split
from simrec.generate import generate_events
from tests.chromium import CHROMIUM, CHROMIUM_FLAGS


@pytest.fixture(scope="module")
def result() -> dict:
    import datetime as dt

    events = generate_events(20_000, n_users=800, n_items=150, days=30,
                             end_date=dt.date(2024, 3, 31), seed=9)
    events = events.assign(day=events["ts"].dt.tz_localize(None).astype("datetime64[s]"))
    split = temporal_split(events, holdout_days=5)
    return run_evaluation(split, Settings().model, k=10,
                          thresholds=(0.0, 0.1, 0.3), max_users=300)


@pytest.fixture(scope="module")
def report(result, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(render(result), encoding="utf-8")
    return path


class _Ids(HTMLParser):
    """Ids of elements, the svg marks inside each figure, and table body rows."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.marks: dict[str, int] = {}
        self.rows: dict[str, int] = {}
        self._figure: str | None = None
        self._table: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "figure":
            self._figure = a.get("id")
        elif tag == "table":
            self._table = a.get("id")
        elif self._figure and tag in ("polyline", "rect", "circle") and a.get("class") in (
            "series", "bar", "point"
        ):
            self.marks[self._figure] = self.marks.get(self._figure, 0) + 1
        elif self._table and tag == "tr":
            self.rows[self._table] = self.rows.get(self._table, 0) + 1

    def handle_endtag(self, tag):
        if tag == "figure":
            self._figure = None
        elif tag == "table":
            self._table = None


def test_report_is_self_contained(report):
    text = report.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    assert "<script" not in text and "@import" not in text
    parsed = _Ids()
    parsed.feed(text)
    assert set(PLOTS) | set(TABLES) <= parsed.ids


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_chromium_renders_every_plot_and_table(report, result, tmp_path):
    flags = [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(
        [CHROMIUM, *flags, "--dump-dom", report.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    parsed = _Ids()
    parsed.feed(dom)
    missing = (set(PLOTS) | set(TABLES)) - parsed.ids
    assert not missing, f"missing after rendering: {missing}"
    n_thresholds = len(result["thresholds"])
    assert parsed.marks["plot-threshold-metrics"] == 3 + 3 * n_thresholds  # lines + points
    assert parsed.marks["plot-threshold-pairs"] == 1 + n_thresholds
    assert parsed.marks["plot-weightings"] == 2 * len(result["weightings"])
    assert parsed.marks["plot-features"] == 6
    assert parsed.marks["plot-score-distribution"] == 2 + 2 * 20
    assert parsed.rows["table-summary"] == 1 + len(result["models"])
    assert parsed.rows["table-thresholds"] == 1 + n_thresholds
    assert parsed.rows["table-features"] == 1 + len(result["features"])
    # A screenshot really paints the page (not blank).
    shot = tmp_path / "report.png"
    subprocess.run(
        [CHROMIUM, *flags, "--window-size=1000,1400", f"--screenshot={shot}", report.as_uri()],
        capture_output=True, timeout=120, check=True,
    )
    assert shot.stat().st_size > 20_000
