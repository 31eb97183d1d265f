"""The README's performance tables are generated from the committed benchmark summary
(bench/summary.md) by bench/readme.py, and the summary from each benchmark's JSON."""

from __future__ import annotations

import json
from pathlib import Path

from bench import readme, summary
from tests.paths import REPO


def test_readme_tables_are_what_the_committed_summary_generates():
    text = (REPO / "README.md").read_text()
    rows = summary.parse((REPO / "bench" / "summary.md").read_text())
    assert rows, "bench/summary.md holds no figure"
    assert readme.rewrite(text, rows) == text, "run python bench/readme.py"
    assert readme.main(["--check"]) == 0


def _serving_json(kernel: float, request: float, implicit: float) -> dict:
    def p(us: float) -> dict:
        return {"p50_us": us, "p99_us": 2 * us, "mean_us": us, "n": 300}

    row = {"kernel": p(kernel), "request": p(request), "python-dict": p(20 * kernel),
           "implicit": p(implicit)}  # fmt: skip
    return {"benchmark": "serving", "size": "M", "rows": {"10": row}}


def test_summary_rows_ratios_and_targets_from_a_benchmark_json(tmp_path: Path):
    (tmp_path / "serving.json").write_text(json.dumps(_serving_json(8.0, 32.0, 12.0)))
    rows = {(r.figure, r.baseline): r for r in summary.collect(tmp_path)}
    request = rows[("request p50, 10 items", "kernel")]
    assert request.ratio == 4.0
    assert request.target() == "<= 3x (issue 17.3): MISSED"  # 4x the kernel
    kernel = rows[("kernel p50, 10 items", "implicit")]
    assert kernel.cells()[2:5] == ["8.00 us", "implicit 12.0 us", "0.67x"]
    assert kernel.target().endswith(": met")
    assert summary.collect(tmp_path, ["similarity"]) == []  # only the benchmarks asked


def test_summary_round_trips_and_a_partial_run_keeps_the_other_benchmarks(tmp_path: Path):
    (tmp_path / "serving.json").write_text(json.dumps(_serving_json(8.0, 16.0, 12.0)))
    new = [r.cells() for r in summary.collect(tmp_path)]
    assert summary.parse(summary.render(new)) == new
    record = [
        ["similarity", "S: local", "0.06 s", "implicit 0.08 s", "0.75x", ""],
        ["serving", "request p50, 10 items", "99 us", "kernel 1 us", "99x", "old"],
    ]
    merged = readme.merge(record, new)
    assert merged[0] == record[0] and merged[1:] == new  # serving replaced, similarity kept
    text = f"# x\n\n{readme.BEGIN}\nstale\n{readme.END}\n\nafter\n"
    out = readme.rewrite(text, merged)
    assert "stale" not in out and out.endswith(f"{readme.END}\n\nafter\n")
    assert "| S: local | 0.06 s | implicit 0.08 s | 0.75x |  |" in out
    assert readme.rewrite(out, merged) == out
