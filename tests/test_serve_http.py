"""`simrec serve` as a real process (gunicorn, 2 workers x 2 threads) over real HTTP, with a
new model published mid-way: every response is a 200 naming exactly one model version
that existed, and its items are exactly that version's answer (no mixing)."""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import orjson
import pytest

from simrec import storage
from simrec.config import Settings
from simrec.core.snapshot import ModelSnapshot
from simrec.serving import api
from simrec.serving.api import ServingApp
from tests.plugins.emulators import free_port

TENANT = "default"


def random_model(version: str, seed: int) -> ModelSnapshot:
    rng = random.Random(seed)
    n = 120
    indptr, indices, scores = [0], [], []
    for i in range(n):
        others = rng.sample([j for j in range(n) if j != i], rng.randint(0, 10))
        row = sorted(((rng.random(), j) for j in others), key=lambda t: (-np.float32(t[0]), t[1]))
        indices += [j for _, j in row]
        scores += [s for s, _ in row]
        indptr.append(len(indices))
    return ModelSnapshot(
        skus=[f"p{i:03d}" for i in range(n)],
        indptr=np.array(indptr),
        indices=np.array(indices),
        scores=np.array(scores),
        users=np.ones(len(indices)),
        popularity=np.array([rng.randint(0, 50) for _ in range(n)], dtype=np.float64),
        metadata={"version": version, "tenant": TENANT},
    )


def paths(rng: random.Random, skus: list[str], count: int) -> list[str]:
    out = []
    for k in range(count):
        if k % 5 == 0:
            out.append(f"/similar?sku={rng.choice(skus)}&n={rng.randint(1, 20)}")
        else:
            hist = ",".join(rng.choice(skus) for _ in range(rng.randint(1, 8)))
            extra = "&exclude_seen=false" if k % 7 == 0 else ""
            out.append(f"/recommendations?browsed={hist}&basket=nope&n={rng.randint(1, 30)}{extra}")
    return out


def expected_answers(tmp: Path, snapshot: ModelSnapshot, requests: list[str]) -> dict[str, dict]:
    """What the in-process app answers for ``snapshot`` (JSON round trip)."""
    root = str(tmp / f"expected-{snapshot.version}")
    storage.write_snapshot(root, TENANT, snapshot)
    app = ServingApp(Settings(models_uri=root, tenant=TENANT, model_refresh_seconds=0))
    out = {}
    for p in set(requests):
        path, _, query = p.partition("?")
        (body, status), _ = app.dispatch("GET", path, query)
        assert status == 200
        out[p] = json.loads(orjson.dumps(body))
    return out


@pytest.fixture
def server(tmp_path: Path):
    workdir = tmp_path / "work"
    bucket = str(workdir / "bucket")
    storage.write_snapshot(bucket, TENANT, random_model("http-v1", 1))
    port = free_port()
    env = {**os.environ, "SIMREC_MODEL_REFRESH_SECONDS": "1"}
    simrec = str(Path(sys.executable).parent / "simrec")
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115 - closed after the server
    proc = subprocess.Popen(
        [simrec, "serve", "--workdir", str(workdir), "--port", str(port),
         "--workers", "2", "--threads", "2"],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("simrec serve did not start:\n" + (tmp_path / "serve.log").read_text())
        time.sleep(0.2)
    yield port, bucket
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
    log.close()


def test_model_swap_under_concurrent_requests(server, tmp_path: Path) -> None:
    api.clear_holders()
    port, bucket = server
    v1, v2 = random_model("http-v1", 1), random_model("http-v2", 2)
    requests = paths(random.Random(3), v1.skus, 200)
    expected = {
        "http-v1": expected_answers(tmp_path, v1, requests),
        "http-v2": expected_answers(tmp_path, v2, requests),
    }
    assert expected["http-v1"] != expected["http-v2"]  # the versions answer differently

    seen: list[tuple[str, int, bytes]] = []
    lock = threading.Lock()
    published = threading.Event()
    stop = threading.Event()

    def client(offset: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for k in range(offset, offset + 4000):  # bounded; stops once v2 was seen enough
            if stop.is_set():
                break
            path = requests[k % len(requests)]
            conn.request("GET", path)
            response = conn.getresponse()
            with lock:
                seen.append((path, response.status, response.read()))
        conn.close()

    def publisher() -> None:
        while len(seen) < 150:
            time.sleep(0.01)
        storage.write_snapshot(bucket, TENANT, v2)
        published.set()
        deadline = time.monotonic() + 60  # a timeout, not a timed assert
        while time.monotonic() < deadline:
            with lock:
                after = sum(b'"http-v2"' in body for _, _, body in seen)
            if after >= 100:
                break
            time.sleep(0.05)
        stop.set()

    threads = [threading.Thread(target=client, args=(i * 37,)) for i in range(4)]
    threads.append(threading.Thread(target=publisher))
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert published.is_set()

    versions = {"http-v1": 0, "http-v2": 0}
    for path, status, raw in seen:
        assert status == 200, (path, raw)
        assert raw.count(b'"model_version"') == 1, raw
        body = json.loads(raw)
        version = body["model_version"]
        assert version in versions, version
        versions[version] += 1
        assert body == expected[version][path], path  # computed from that version alone
    assert versions["http-v1"] >= 150 and versions["http-v2"] >= 100
