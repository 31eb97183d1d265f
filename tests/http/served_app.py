"""The production server (``python -m simrec.serving.server``, uvicorn workers) as a real
process on a free port, over a small model with a catalog: what the /ui and public-mode
tests call over real HTTP."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from simrec import publishing
from simrec.core.snapshot import ModelSnapshot
from tests.net import free_port
from tests.shops import snapshot_from_rows

TENANT = "default"
VERSION = "ui-v1"


def catalog_model(version: str = VERSION, n: int = 40) -> ModelSnapshot:
    """Items ``sku-000``.. with 1..5 neighbors each (seeded), a catalog of categories,
    stock and two attributes, and distinct popularities."""
    rng = np.random.default_rng(7)
    skus = [f"sku-{i:03d}" for i in range(n)]
    rows = {}
    for i in range(n):
        others = rng.choice([j for j in range(n) if j != i], size=int(rng.integers(1, 6)),
                            replace=False)  # fmt: skip
        draws = sorted(((float(np.float32(rng.random())), int(j)) for j in others),
                       key=lambda t: (-t[0], t[1]))  # fmt: skip
        rows[i] = [(j, s) for s, j in draws]
    return snapshot_from_rows(
        skus,
        rows,
        [float((i * 7) % n + 1) for i in range(n)],
        {
            "version": version,
            "tenant": TENANT,
            "created_at": "2026-12-04T00:00:00Z",
            "params": {"date": "2026-12-03"},
            "counts": {"items": n},
        },  # fmt: skip
        catalog={
            "sku": skus,
            "category": [("shoes", "bags", "hats")[i % 3] for i in range(n)],
            "in_stock": [i % 4 != 0 for i in range(n)],
            "title": [f"Item number {i}" for i in range(n)],
            "brand": [("acme", "globex")[i % 2] for i in range(n)],
        },
    )


class ServerProcess:
    """A server command as a real process on ``self.port`` until ``stop``.

    Ready once ``/healthz`` answers ``ready_status``: a worker accepts connections only
    once it has loaded the published model (``simrec.serving.server.ReadyAfterLoad``), so
    the first answer speaks for every worker."""

    def __init__(self, argv: list[str], log_path: Path, env: dict[str, str],
                 ready_status: int = 200) -> None:  # fmt: skip
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            argv, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "SIMREC_MODEL_REFRESH_SECONDS": "1", **env},
        )  # fmt: skip
        deadline = time.monotonic() + 90
        #: The statuses answered before ``ready_status`` (a worker up before its model).
        self.not_ready: list[int] = []
        while True:
            try:
                status = self.request("/healthz")[0]
                if status == ready_status:
                    break
                self.not_ready.append(status)
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail("the server did not start:\n" + self.log_path.read_text())
            time.sleep(0.2)

    def request(
        self, target: str, headers: dict[str, str] | None = None, method: str = "GET"
    ) -> tuple[int, dict[str, str], bytes]:
        """``(status, headers (lower-case names), body)`` of one request on a new
        connection."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, target, headers=headers or {})
            response = conn.getresponse()
            fields = {k.lower(): v for k, v in response.getheaders()}
            return response.status, fields, response.read()
        finally:
            conn.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._log.close()


class ServedApp(ServerProcess):
    """``python -m simrec.serving.server`` (one worker) with ``env`` (``SIMREC_*``)."""

    def __init__(self, log_dir: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        super().__init__(
            [sys.executable, "-m", "simrec.serving.server", "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", "1"],
            log_dir / f"server-{self.port}.log", env,
        )  # fmt: skip

    get = ServerProcess.request


def publish(root: str, snapshot: ModelSnapshot) -> None:
    publishing.write_snapshot(root, TENANT, snapshot)


def model_client(tmp_path: Path, tenant: str, snapshot: ModelSnapshot) -> Any:
    """A werkzeug test client of the WSGI app serving ``snapshot`` as ``tenant``'s
    published model (the holders cleared first)."""
    from werkzeug.test import Client

    from simrec.config import Settings
    from simrec.serving import api
    from simrec.serving.api import ServingApp

    api.HOLDERS.clear()
    root = str(tmp_path / "models")
    publishing.write_snapshot(root, tenant, snapshot)
    return Client(ServingApp(Settings(models_uri=root, tenant=tenant)))


def get_json(client: Any, path: str, query: str) -> tuple[int, dict]:
    """``GET path?query`` on a test client: status and JSON body."""
    response = client.get(f"{path}?{query}")
    return response.status_code, response.get_json()
