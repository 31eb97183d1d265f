"""The production server (``python -m simrec.serving.server``, uvicorn workers) as a real
process on a free port, over a small model with a catalog: what the /ui and public-mode
tests call over real HTTP."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from simrec.core.snapshot import ModelSnapshot
from simrec.storage import snapshots

TENANT = "default"
VERSION = "ui-v1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def catalog_model(version: str = VERSION, n: int = 40) -> ModelSnapshot:
    """Items ``sku-000``.. with 1..5 neighbours each (seeded), a catalog of categories,
    stock and two attributes, and distinct popularities."""
    rng = np.random.default_rng(7)
    skus = [f"sku-{i:03d}" for i in range(n)]
    indptr, indices, scores = [0], [], []
    for i in range(n):
        others = rng.choice([j for j in range(n) if j != i], size=int(rng.integers(1, 6)),
                            replace=False)  # fmt: skip
        row = sorted(((float(np.float32(rng.random())), int(j)) for j in others),
                     key=lambda t: (-t[0], t[1]))  # fmt: skip
        indices += [j for _, j in row]
        scores += [s for s, _ in row]
        indptr.append(len(indices))
    return ModelSnapshot(
        skus=skus,
        indptr=np.array(indptr),
        indices=np.array(indices),
        scores=np.array(scores),
        users=np.ones(len(indices)),
        popularity=np.array([float((i * 7) % n + 1) for i in range(n)]),
        metadata={
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


class ServedApp:
    """``python -m simrec.serving.server`` with ``env`` (``SIMREC_*``) until ``stop``."""

    def __init__(self, log_dir: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"server-{self.port}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "simrec.serving.server", "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", "1"],
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "SIMREC_MODEL_REFRESH_SECONDS": "1", **env},
        )  # fmt: skip
        deadline = time.monotonic() + 90
        while True:
            try:
                if self.get("/healthz")[0] == 200:
                    break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail("the server did not start:\n" + self.log_path.read_text())
            time.sleep(0.2)

    def get(
        self, target: str, headers: dict[str, str] | None = None, method: str = "GET"
    ) -> tuple[int, dict[str, str], bytes]:
        """``(status, headers (lower-case names), body)`` of one request."""
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


def publish(root: str, snapshot: ModelSnapshot) -> None:
    snapshots.write_snapshot(root, TENANT, snapshot)
