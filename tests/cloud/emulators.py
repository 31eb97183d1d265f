"""Google Cloud emulator fixtures (Datastore now; Pub/Sub the same way); skip when absent.

The emulators ship with the machine's gcloud SDK and cannot be installed by the project,
so a test that needs one skips with the reason when ``gcloud``, Java or the emulator
component is missing. ``gcloud ... start`` is a wrapper around a Java child that would
survive the wrapper: each emulator runs in its own process group, killed as a whole.

Adding an emulator takes a spec and two fixtures shaped like the Datastore ones in
tests/cloud/conftest.py::

    PUBSUB = EmulatorSpec("pubsub", "pubsub-emulator", "PUBSUB_EMULATOR_HOST")

    def pubsub_emulator(tmp_path_factory):  # session scope
        with GcloudEmulator(PUBSUB, tmp_path_factory.mktemp("pubsub")) as emulator:
            yield emulator
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.net import free_port

START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class EmulatorSpec:
    """One ``gcloud beta emulators <name>``: its SDK component folder and client env var."""

    name: str
    component_dir: str
    env_var: str
    start_args: Sequence[str] = field(default_factory=tuple)


DATASTORE = EmulatorSpec(
    "datastore",
    "cloud-datastore-emulator",
    "DATASTORE_EMULATOR_HOST",
    ("--no-store-on-disk", "--consistency=1.0"),
)


def _sdk_root(gcloud: str) -> Path:
    return Path(os.path.realpath(gcloud)).parent.parent


def missing_reason(spec: EmulatorSpec) -> str | None:
    """Why this emulator cannot run here, or None when it can."""
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        return f"the gcloud CLI is not installed (needed for the {spec.name} emulator)"
    if shutil.which("java") is None:
        return f"Java is not installed (the {spec.name} emulator runs on Java)"
    component = _sdk_root(gcloud) / "platform" / spec.component_dir
    if not component.is_dir():
        return f"the gcloud component {spec.component_dir!r} is not installed ({component})"
    return None


def _group_alive(pgid: int) -> bool:
    """Any live (non-zombie) process left in the group? Zombies are ignored: orphans
    reparented to a PID 1 that does not reap them would otherwise look alive forever."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # state, ppid, pgrp, ...
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


class GcloudEmulator:
    """Start/stop one gcloud emulator on 127.0.0.1 with its own ``CLOUDSDK_CONFIG``."""

    def __init__(self, spec: EmulatorSpec, workdir: Path, project: str = "simrec-test") -> None:
        self.spec = spec
        self.workdir = Path(workdir)
        self.project = project
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.workdir / f"{spec.name}-emulator.log"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self, timeout_s: float = START_TIMEOUT_S) -> GcloudEmulator:
        """Start and wait for the health endpoint; ``pytest.skip`` when unavailable."""
        reason = missing_reason(self.spec)
        if reason:
            pytest.skip(reason)
        config = self.workdir / "gcloud-config"
        config.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "CLOUDSDK_CONFIG": str(config), "CLOUDSDK_CORE_DISABLE_PROMPTS": "1"}
        env.pop(self.spec.env_var, None)
        self.port = free_port()
        cmd = [
            "gcloud", "beta", "emulators", self.spec.name, "start",
            f"--host-port={self.host}", f"--project={self.project}", *self.spec.start_args,
        ]  # fmt: skip
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,  # own process group: the Java child dies with it
            )
        self._wait_ready(timeout_s)
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                log = self.log_path.read_text(errors="replace")
                self.stop()
                raise RuntimeError(f"{self.spec.name} emulator exited early:\n{log}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(self.url + "/", timeout=1) as response,
            ):
                if response.status == 200:
                    return
            time.sleep(0.2)
        self.stop()
        log = self.log_path.read_text(errors="replace")
        raise RuntimeError(f"{self.spec.name} emulator not ready after {timeout_s}s:\n{log}")

    def post(self, path: str) -> bytes:
        """POST to an admin endpoint, e.g. ``/reset``."""
        request = urllib.request.Request(self.url + path, data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.read()

    def stop(self) -> None:
        """Kill the whole process group (wrapper, shell script and Java child)."""
        process, self.process = self.process, None
        if process is None:
            return
        for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            if not _group_alive(process.pid):
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline and _group_alive(process.pid):
                process.poll()  # reap the wrapper itself
                time.sleep(0.1)
        process.poll()

    def __enter__(self) -> GcloudEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
