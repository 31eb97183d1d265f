"""Reruns, forced reruns, crashes and concurrent runs of the whole local chain (issue 12):
the served model is never removed or hidden, LATEST always names a complete version, a
rerun resumes the first incomplete stage, and two runs on one workdir never interleave.

Kills are real where the stage is a process (the Beam load is replaced by a script that
SIGKILLs itself, before or after running the real load); the in-process similarity
engine is made to raise.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import textwrap
from pathlib import Path

import pytest

from simrec import publishing, storage
from simrec.adapters import local_launchers
from simrec.cli import main
from simrec.core import layout
from simrec.generate import generate_events, write_events
from simrec.jobs import local_similarity
from simrec.local.runner import RunLocked, Workdir, local_settings, run_lock
from simrec.stages import jobs, load
from simrec.storage import snapshots

pytestmark = pytest.mark.chain  # the whole local chain, in processes: tens of seconds
END = dt.date(2024, 3, 20)
NIGHT = END + dt.timedelta(days=1)
TENANT = "default"


@pytest.fixture(scope="module")
def events(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("events") / "events.csv"
    write_events(generate_events(4_000, days=10, end_date=END, seed=3), path)
    return path


def run(events: Path, workdir: Path, *extra: str) -> int:
    return main(["run", "--events", str(events), "--workdir", str(workdir),
                 "--engine", "local", "--window-days", "10", *extra])  # fmt: skip


def summary(workdir: Path) -> dict:
    return json.loads((workdir / "summary.json").read_text())


def bucket(workdir: Path) -> str:
    return str(Workdir(workdir).bucket)


def served(workdir: Path) -> str | None:
    """LATEST, checked to name a complete version whenever it is set."""
    version = snapshots.latest_version(bucket(workdir), TENANT)
    if version is not None:
        assert publishing.is_complete(bucket(workdir), TENANT, version), version
    return version


def decisions(workdir: Path) -> list[tuple[str, str]]:
    return [(d["function"], d["action"]) for d in summary(workdir)["decisions"]]


@pytest.fixture
def beam_script(tmp_path, monkeypatch):
    """Replace the Beam load by a script killed by SIGKILL, before or after the real load."""

    def install(after_publishing: bool) -> None:
        script = tmp_path / "killed_load.py"
        script.write_text(textwrap.dedent(f"""
            import os, signal, sys
            if {after_publishing!r}:
                from simrec.jobs import beam_load
                beam_load.main(sys.argv[1:])
            os.kill(os.getpid(), signal.SIGKILL)
        """))
        monkeypatch.setattr(local_launchers, "BEAM_LOAD", (str(script),))

    return install


def test_failed_force_keeps_the_served_model_and_a_plain_rerun_works(events, tmp_path):
    workdir = tmp_path / "w"
    assert run(events, workdir) == 0
    first = served(workdir)
    assert first == summary(workdir)["run_id"]

    broken = tmp_path / "broken.csv"
    broken.write_bytes(b"\x00\x01 not,a\ncsv\x00" * 10)
    assert run(broken, workdir, "--date", NIGHT.isoformat(), "--force") == 1
    assert served(workdir) == first  # the old version and LATEST are untouched

    assert run(events, workdir) == 0  # the identical plain command succeeds
    assert served(workdir) == summary(workdir)["model_version"]
    assert publishing.is_complete(bucket(workdir), TENANT, first)


def test_force_is_a_new_attempt_beside_the_served_version(events, tmp_path):
    workdir = tmp_path / "w"
    assert run(events, workdir) == 0
    first = summary(workdir)
    assert run(events, workdir, "--force") == 0
    second = summary(workdir)
    assert second["attempt"] == 1 and second["run_id"] == f"{first['run_id']}-a1"
    assert decisions(workdir) == [
        ("export", "exported"), ("cluster", "succeeded"), ("dataflow_launch", "succeeded")
    ]
    assert served(workdir) == second["run_id"]  # the same night, computed later
    assert publishing.is_complete(bucket(workdir), TENANT, first["run_id"])


def test_an_older_night_is_kept_aside_unless_published(events, tmp_path):
    workdir = tmp_path / "w"
    assert run(events, workdir) == 0
    newest = served(workdir)
    older = (NIGHT - dt.timedelta(days=2)).isoformat()
    assert run(events, workdir, "--date", older, "--force") == 0
    kept = summary(workdir)
    assert served(workdir) == newest != kept["model_version"]
    assert kept["latest"] == newest
    assert publishing.is_complete(bucket(workdir), TENANT, kept["model_version"])
    # the operator asks for it: the complete version is published without recomputing
    assert run(events, workdir, "--date", older, "--publish") == 0
    assert served(workdir) == kept["model_version"]
    assert decisions(workdir) == [("export", "resumed")]


def test_killed_load_then_the_identical_command_resumes_the_load(events, tmp_path, beam_script,
                                                                 monkeypatch):
    workdir = tmp_path / "w"
    beam_script(after_publishing=False)
    assert run(events, workdir) == 1
    assert served(workdir) is None
    monkeypatch.undo()
    assert run(events, workdir) == 0
    assert decisions(workdir) == [("export", "resumed"), ("dataflow_launch", "succeeded")]
    assert served(workdir) == summary(workdir)["model_version"] is not None


def test_load_killed_after_publishing_is_a_success(events, tmp_path, beam_script):
    workdir = tmp_path / "w"
    beam_script(after_publishing=True)
    assert run(events, workdir) == 0
    assert served(workdir) == summary(workdir)["model_version"]
    made = summary(workdir)["decisions"]
    [launch] = [d for d in made if d["stage"] == load.STAGE]
    assert launch["action"] == "launched"
    # The job ended FAILED (killed), but its version was complete: success, no retry. Its
    # end reaches the function that launched it.
    [ended] = [d for d in made if d["stage"] == jobs.STAGE]
    assert ended["function"] == "dataflow_launch"
    assert ended["action"] == "succeeded" and "output was complete" in ended["reason"]


def test_crashed_similarity_stage_then_the_identical_command_resumes_it(events, tmp_path,
                                                                        monkeypatch):
    workdir = tmp_path / "w"

    def killed(*args, **kwargs):
        raise RuntimeError("similarity process killed")

    monkeypatch.setattr(local_similarity, "run_local_similarity", killed)
    assert run(events, workdir) == 1
    monkeypatch.undo()
    assert run(events, workdir) == 0
    assert decisions(workdir) == [
        ("export", "resumed"), ("cluster", "succeeded"), ("dataflow_launch", "succeeded")
    ]
    assert served(workdir) == summary(workdir)["model_version"]


@pytest.mark.spark
def test_killed_spark_job_then_the_identical_command_resumes_it(events, tmp_path, monkeypatch):
    workdir = tmp_path / "w"
    script = tmp_path / "killed_spark.py"
    script.write_text("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n")
    real = local_launchers.SPARK_JOB
    monkeypatch.setattr(local_launchers, "SPARK_JOB", (str(script),))
    argv = ["--engine", "spark"]
    assert run(events, workdir, *argv) == 1
    assert served(workdir) is None
    monkeypatch.setattr(local_launchers, "SPARK_JOB", real)
    assert run(events, workdir, *argv) == 0
    assert decisions(workdir) == [
        ("export", "resumed"), ("cluster", "succeeded"), ("dataflow_launch", "succeeded")
    ]
    assert served(workdir) == summary(workdir)["model_version"]


def test_a_complete_run_rerun_is_skipped(events, tmp_path):
    workdir = tmp_path / "w"
    assert run(events, workdir) == 0
    assert run(events, workdir) == 0
    assert decisions(workdir) == [("export", "skipped")]


def test_a_second_run_on_the_same_workdir_is_refused(events, tmp_path, capsys):
    workdir = tmp_path / "w"
    settings = local_settings(Workdir(workdir))
    with run_lock(settings, TENANT):
        assert run(events, workdir) == 1
        with pytest.raises(RunLocked), run_lock(settings, TENANT):  # the same process too
            pass
    assert "another run of tenant 'default'" in capsys.readouterr().err
    assert not (Workdir(workdir).bucket / "exports").exists()
    with run_lock(settings, "other-shop"):  # other tenants are not held up
        pass
    assert run(events, workdir) == 0


def test_a_concurrent_process_is_refused_while_a_run_holds_the_lock(events, tmp_path):
    import subprocess

    workdir = tmp_path / "w"
    settings = local_settings(Workdir(workdir))
    code = ("import sys; from simrec.cli import main; sys.exit(main(sys.argv[1:]))")
    with run_lock(settings, TENANT):
        proc = subprocess.run(
            [sys.executable, "-c", code, "run", "--events", str(events), "--workdir",
             str(workdir), "--engine", "local"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
    assert proc.returncode == 1
    assert "another run of tenant 'default'" in proc.stderr


def test_no_export_manifest_describes_a_missing_day(events, tmp_path):
    from simrec.adapters.warehouse_local import DuckDBWarehouse
    from simrec.core.runs import RunParams
    from simrec.stages.export import run_export

    root = str(tmp_path / "bucket")
    params = RunParams(TENANT, NIGHT, window_days=10)

    class DayVanishes(DuckDBWarehouse):
        """Another process replaces a day folder between the export and its manifest."""

        def export(self, params, source, schema, data_root):
            result = super().export(params, source, schema, data_root)
            storage.remove(layout.export_day(data_root, TENANT, min(result.days)), True)
            return result

    with pytest.raises(RuntimeError, match="missing after the export; no manifest written"):
        run_export(params, DayVanishes(), str(events), "plain", root)
    assert not storage.exists(layout.export_manifest(root, TENANT, params.run_id))
    manifest = run_export(params, DuckDBWarehouse(), str(events), "plain", root)
    assert manifest["days"] and storage.exists(layout.export_manifest(root, TENANT, params.run_id))


@pytest.mark.parametrize("tenant", ["default", "t" * 100])
def test_every_idempotency_key_derives_from_run_id_and_attempt(tenant):
    import dataclasses

    from simrec.adapters.gcp.bigquery import job_id
    from simrec.adapters.gcp.dataproc import dataproc_request_id
    from simrec.core.runs import RunParams, attempt_id, parse_attempt
    from simrec.stages.load import job_name

    first = RunParams(tenant, NIGHT)
    attempts = [dataclasses.replace(first, attempt=n) for n in range(3)]
    assert [p.run_id for p in attempts] == [attempt_id(first.night_id, n) for n in range(3)]
    assert [parse_attempt(p.run_id, first.night_id) for p in attempts] == [0, 1, 2]
    assert len({p.params_hash for p in attempts}) == 1  # the same computation
    for ids in (
        [job_id(p) for p in attempts],
        [job_name(p) for p in attempts],
        [dataproc_request_id(f"simrec-dimsum-{p.key}") for p in attempts],
    ):
        assert len(set(ids)) == 3, ids
    assert all(len(job_name(p)) <= 63 for p in attempts)
    assert job_id(first) == f"simrec-export-{first.key}"  # first attempts keep their ids
