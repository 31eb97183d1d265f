"""Property-based fuzz of the whole local run (slow tier): random mixtures of valid and
invalid rows, a random stage killed, then the identical command again, then a forced
rerun with another random kill. After every command:

* the served model (LATEST) is unset or names a complete version, never a deleted or
  half-written one, and a forced rerun never takes away the served model;
* after every successful command the summary's counts add up to the input: every row is
  valid, rejected with its (exact) reason, or before/after the window (rows_read =
  valid + rejected + ignored + outside; a plain source has no ignored events).
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import json
import shutil
import tempfile
import textwrap
from collections import Counter
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from simrec import publishing
from simrec.adapters import local_launchers
from simrec.cli import main
from simrec.core.events import MAX_SKU_LENGTH, REJECT_REASONS
from simrec.jobs import local_similarity
from simrec.local.runner import Workdir
from simrec.storage import snapshots

pytestmark = pytest.mark.slow

NIGHT = dt.date(2024, 3, 21)
WINDOW_DAYS = 10
TENANT = "default"
KILLS = (None, "export", "similarity", "load", "load_after_publishing")
FAILING = ("export", "similarity", "load")  # kills the command reports as a failure

#: Always present: six shoppers who each viewed five items, so every run has a model.
BASE = [(f"u{u}", f"s{s}", "browsed", f"{NIGHT - dt.timedelta(days=1 + s)}T10:00:00Z")
        for u in range(6) for s in range(5)]  # fmt: skip

# (row, class): class is "valid", a reject reason, or "before"/"after" (a valid ts outside
# the window, on that side).
_day = st.integers(1, WINDOW_DAYS).map(lambda d: f"{NIGHT - dt.timedelta(days=d)}T08:30:00Z")
_valid = st.tuples(
    st.sampled_from([f"u{i}" for i in range(8)]),
    st.sampled_from([f"s{i}" for i in range(7)] + ["x" * MAX_SKU_LENGTH]),
    st.sampled_from(["browsed", "basket", "purchase", " Basket "]),
    _day,
).map(lambda r: (r, "valid"))
_rows = st.one_of(
    _valid,
    _valid.map(lambda r: (("", *r[0][1:]), "missing_user_id")),
    _valid.map(lambda r: ((r[0][0], " ", *r[0][2:]), "empty_sku")),
    _valid.map(lambda r: ((r[0][0], "y" * (MAX_SKU_LENGTH + 1), *r[0][2:]), "sku_too_long")),
    _valid.map(lambda r: ((*r[0][:2], "wishlist", r[0][3]), "unknown_action")),
    _valid.map(lambda r: ((*r[0][:3], "not a date"), "bad_timestamp")),
    _valid.map(lambda r: ((*r[0][:3], "2099-01-01T00:00:00Z"), "after")),
    _valid.map(lambda r: ((*r[0][:3], "2001-05-05"), "before")),
)


def check_counts(summary: dict, expected: Counter) -> None:
    """The summary's counts (simrec.adapters.ports.ExportResult.counts) against the
    classes the rows were drawn from: each row in exactly one place."""
    rows = summary["rows"]
    valid = expected["valid"]
    reasons = {r: expected[r] for r in REJECT_REASONS}
    assert rows["rows_valid"] == valid
    assert rows["rejected_by_reason"] == reasons
    assert rows["rows_rejected"] == sum(reasons.values())
    assert rows["rows_ignored"] == 0 and rows["ignored_events"] == {}
    sides = {side: span["rows"] for side, span in rows["outside_window"].items()}
    assert sides == {"before": expected["before"], "after": expected["after"]}
    assert rows["rows_outside"] == expected["before"] + expected["after"]
    assert rows["rows_read"] == (rows["rows_valid"] + rows["rows_rejected"]
                                 + rows["rows_ignored"] + rows["rows_outside"])  # fmt: skip
    assert rows["rows_read"] == sum(expected.values())


def check_served(workdir: Path, before: str | None = None) -> str | None:
    root = str(Workdir(workdir).bucket)
    version = snapshots.latest_version(root, TENANT)
    if version is not None:
        assert publishing.is_complete(root, TENANT, version), version
    if before is not None:
        assert version is not None  # a served model is never taken away
    return version


@contextlib.contextmanager
def killed(stage: str | None, scratch: Path):
    """Make one stage die: the export after writing its day folders (before its manifest)
    and the in-process similarity raise; the Beam load is a process that SIGKILLs itself,
    before or after running the real load."""
    if stage is None:
        yield
        return
    if stage == "export":
        from simrec.adapters.warehouse_local import DuckDBWarehouse

        real_export = DuckDBWarehouse.export

        def export_then_die(self, *args, **kwargs):
            real_export(self, *args, **kwargs)
            raise RuntimeError("export function killed before its manifest")

        with mock.patch.object(DuckDBWarehouse, "export", export_then_die):
            yield
        return
    if stage == "similarity":
        def die(*args, **kwargs):
            raise RuntimeError("similarity process killed")

        with mock.patch.object(local_similarity, "run_local_similarity", die):
            yield
        return
    script = scratch / f"killed_{stage}.py"
    script.write_text(textwrap.dedent(f"""
        import os, signal, sys
        if {stage == "load_after_publishing"!r}:
            from simrec.jobs import beam_load
            beam_load.main(sys.argv[1:])
        os.kill(os.getpid(), signal.SIGKILL)
    """))
    with mock.patch.object(local_launchers, "BEAM_LOAD", (str(script),)):
        yield


def run(events: Path, workdir: Path, *extra: str) -> int:
    return main([
        "run", "--events", str(events), "--workdir", str(workdir), "--engine", "local",
        "--date", NIGHT.isoformat(), "--window-days", str(WINDOW_DAYS), *extra,
    ])  # fmt: skip


def _with_every_kill(test):
    """Every kill, first and on the forced rerun, at least once besides the random draws."""
    for first, forced in zip(KILLS, KILLS[1:] + KILLS[:1], strict=True):
        test = example(extra=[], first_kill=first, force_kill=forced)(test)
    return test


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@_with_every_kill
@given(
    extra=st.lists(_rows, max_size=40),
    first_kill=st.sampled_from(KILLS),
    force_kill=st.sampled_from(KILLS),
)
def test_counts_add_up_and_the_served_model_is_always_complete(extra, first_kill, force_kill):
    scratch = Path(tempfile.mkdtemp(prefix="simrec-fuzz-"))
    try:
        rows = [(r, "valid") for r in BASE] + extra
        events = scratch / "events.csv"
        with open(events, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["user_id", "sku", "action", "ts"])
            writer.writerows(r for r, _ in rows)
        expected = Counter(kind for _, kind in rows)
        workdir = scratch / "w"

        with killed(first_kill, scratch):
            code = run(events, workdir)
        assert code == (1 if first_kill in FAILING else 0)
        check_served(workdir)

        assert run(events, workdir) == 0  # the identical command finishes the run
        summary = json.loads((workdir / "summary.json").read_text())
        check_counts(summary, expected)
        served = check_served(workdir)
        assert served == summary["model_version"]

        with killed(force_kill, scratch):
            code = run(events, workdir, "--force")
        assert code == (1 if force_kill in FAILING else 0)
        after = check_served(workdir, before=served)
        if code == 0:
            forced = json.loads((workdir / "summary.json").read_text())
            check_counts(forced, expected)
            assert after == forced["model_version"] != served
        else:
            assert after == served
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
