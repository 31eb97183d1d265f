"""`simrec serve` as a real process (the production server) over real HTTP and sockets.

* A new model published mid-way: every response is a 200 naming exactly one model version
  that existed, and its items are exactly that version's answer (no mixing).
* Half-open connections (headers never finished) never block another client, and are
  closed with a JSON 408 after the header timeout.
* Every limit the API documents is reachable, and every refusal (including an over-long
  request line) is JSON.
* A worker accepts connections only once it has loaded the published model; ``/healthz``
  is 503 while no model is published, and a model published later loads in the background.
"""

from __future__ import annotations

import http.client
import json
import random
import select
import socket
import sys
import threading
import time
from pathlib import Path

import numpy as np
import orjson
import pytest

from simrec import publishing
from simrec.config import Settings
from simrec.core.snapshot import ModelSnapshot
from simrec.serving import api
from simrec.serving import server as server_module
from simrec.serving.api import ServingApp
from tests.http.served_app import ServerProcess
from tests.net import free_port
from tests.shops import snapshot_from_rows

TENANT = "default"


def random_model(version: str, seed: int) -> ModelSnapshot:
    rng = random.Random(seed)
    n = 120
    rows = {}
    for i in range(n):
        others = rng.sample([j for j in range(n) if j != i], rng.randint(0, 10))
        row = sorted(((rng.random(), j) for j in others), key=lambda t: (-np.float32(t[0]), t[1]))
        rows[i] = [(j, s) for s, j in row]
    popularity = np.array([rng.randint(0, 50) for _ in range(n)], dtype=np.float64)
    skus = [f"p{i:03d}" for i in range(n)]
    return snapshot_from_rows(skus, rows, popularity, {"version": version, "tenant": TENANT})


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
    publishing.write_snapshot(root, TENANT, snapshot)
    app = ServingApp(Settings(models_uri=root, tenant=TENANT, model_refresh_seconds=0))
    out = {}
    for p in set(requests):
        path, _, query = p.partition("?")
        (body, status), _ = app.dispatch("GET", path, query)
        assert status == 200
        out[p] = json.loads(orjson.dumps(body))
    return out


class Serve(ServerProcess):
    """A ``simrec serve`` process on a free 127.0.0.1 port (stopped by ``stop``)."""

    def __init__(self, tmp_path: Path, workdir: Path, *args: str, ready_status: int = 200):
        self.port = free_port()
        simrec = str(Path(sys.executable).parent / "simrec")
        super().__init__(
            [simrec, "serve", "--workdir", str(workdir), "--port", str(self.port), *args],
            tmp_path / f"serve-{self.port}.log", {}, ready_status,
        )

    def get(self, target: str) -> tuple[int, str, bytes]:
        """``(status, content type, body)`` of one GET on a new connection."""
        status, headers, body = self.request(target)
        return status, headers.get("content-type", ""), body


@pytest.fixture
def server(tmp_path: Path):
    workdir = tmp_path / "work"
    bucket = str(workdir / "bucket")
    publishing.write_snapshot(bucket, TENANT, random_model("http-v1", 1))
    serve = Serve(tmp_path, workdir, "--workers", "2")
    yield serve.port, bucket
    serve.stop()


@pytest.mark.parametrize("kind", server_module.SERVERS)
def test_workers_accept_only_once_their_model_is_loaded(tmp_path: Path, kind: str) -> None:
    """With the model published before the start, no worker answers before it has loaded
    it: the first answer is 200 and so is every later one, whichever worker takes it."""
    workdir = tmp_path / "work"
    publishing.write_snapshot(str(workdir / "bucket"), TENANT, random_model("http-v1", 1))
    serve = Serve(tmp_path, workdir, "--workers", "2", "--server", kind)
    try:
        assert serve.not_ready == []
        assert [serve.get("/similar?sku=p001")[0] for _ in range(20)] == [200] * 20
    finally:
        serve.stop()


def test_model_swap_under_concurrent_requests(server, tmp_path: Path) -> None:
    api.HOLDERS.clear()
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
        publishing.write_snapshot(bucket, TENANT, v2)
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


def _half_open(port: int) -> socket.socket:
    """A connection that sent part of a request's headers and never the rest."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: 1")
    return sock


def _still_open_and_silent(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        sock.recv(1)  # b"" (closed by the server) or an answer: not silent
        return False
    except BlockingIOError:
        return True  # nothing to read and not closed
    finally:
        sock.setblocking(True)


def test_half_open_connections_never_block_another_client(tmp_path: Path) -> None:
    """16 half-open connections (twice gthread's default 8 threads, which they used to
    block for good) on a 1-worker server: another client is answered while they are all
    still open; after the header timeout each gets a JSON 408 and is closed (one that
    never sent a byte is just closed)."""
    workdir = tmp_path / "work"
    publishing.write_snapshot(str(workdir / "bucket"), TENANT, random_model("slow-v1", 1))
    serve = Serve(tmp_path, workdir, "--workers", "1", "--header-timeout", "5")
    try:
        slow = [_half_open(serve.port) for _ in range(16)]
        silent = socket.create_connection(("127.0.0.1", serve.port), timeout=30)
        status, kind, body = serve.get("/healthz")  # the 17th client
        assert status == 200 and json.loads(body)["model_version"] == "slow-v1"
        status, _, body = serve.get("/recommendations?browsed=p001,p002,p003&n=3")
        assert status == 200 and json.loads(body)["model_version"] == "slow-v1"
        assert all(_still_open_and_silent(s) for s in slow)  # answered before any timed out
        for sock in slow:  # then the server itself ends them, in JSON
            raw = b""
            while chunk := sock.recv(4096):
                raw += chunk
            head, _, payload = raw.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 408") and b"application/json" in head.lower()
            assert json.loads(payload)["field"] == "request"
            sock.close()
        assert silent.recv(100) == b""  # never sent a byte: closed without an answer
        silent.close()
    finally:
        serve.stop()


def test_every_documented_limit_is_reachable_and_json(server) -> None:
    """The API's own limits answer (not the server's): max_skus skus of MAX_SKU_LENGTH
    characters fit in a request line; one more sku, a longer sku, a longer query string
    each get a JSON 400 naming the field; a request line past the server's limit (derived
    from the same constants) gets a JSON 414, never an HTML page."""
    port, _ = server
    serve = Serve.__new__(Serve)
    serve.port = port
    settings = Settings()
    max_skus, length = settings.max_skus_per_request, api.MAX_SKU_LENGTH

    def skus(count: int, size: int = length) -> str:
        return ",".join(f"{k:0{size}d}" for k in range(count))

    status, kind, body = serve.get(f"/recommendations?browsed={skus(max_skus)}&n=5")
    assert (status, kind) == (200, "application/json") and json.loads(body)["fallback"]
    half = max_skus // 2
    status, _, body = serve.get(
        f"/recommendations?browsed={skus(half)}&basket={skus(max_skus - half)}"
        f"&exclude={skus(1)}&n=5"
    )
    assert status == 200, body
    for target, field in [
        (f"/recommendations?browsed={skus(max_skus + 1, 4)}", "browsed"),
        (f"/recommendations?browsed=a,{'x' * (length + 1)}", "browsed"),
        (f"/similar?sku={'x' * (length + 1)}", "sku"),
        (f"/recommendations?browsed=a&exclude={skus(max_skus + 1, 4)}", "exclude"),
        (f"/recommendations?n={settings.max_n + 1}", "n"),
        (f"/recommendations?browsed={'a,' * (api.max_query_bytes(max_skus) // 2 + 1)}", "query"),
    ]:
        status, kind, body = serve.get(target)
        assert (status, kind) == (400, "application/json"), (target[:80], body[:200])
        assert json.loads(body)["field"] == field

    # Past the server's limit: sent in pieces, as a slow or hostile client would.
    limit = server_module.max_request_line(max_skus) + server_module.HEADER_FIELDS_BYTES
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(b"GET /recommendations?browsed=")
    sent = 0
    while sent <= 2 * limit and not select.select([sock], [], [], 0)[0]:
        sock.sendall(b"x" * 4096)  # the server reads it all, answers, then closes
        sent += 4096
    raw = b""
    while chunk := sock.recv(4096):
        raw += chunk
    sock.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 414") and b"application/json" in head.lower(), raw[:300]
    assert json.loads(payload)["field"] == "request" and str(limit) in json.loads(payload)["error"]

    # Header fields past the limit: 431, JSON; a malformed request line: 400, JSON.
    for request, status in [
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"y" * (2 * limit) + b"\r\n\r\n",
         b"431"),
        (b"NOT A REQUEST\r\n\r\n", b"400"),
    ]:  # fmt: skip
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        for k in range(0, len(request), 4096):
            if select.select([sock], [], [], 0)[0]:
                break
            sock.sendall(request[k : k + 4096])
        raw = b""
        while chunk := sock.recv(4096):
            raw += chunk
        sock.close()
        head, _, payload = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 " + status), raw[:200]
        assert b"application/json" in head.lower() and json.loads(payload)["field"] == "request"


def test_healthz_is_503_until_the_model_is_loaded_in_the_background(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    bucket = str(workdir / "bucket")
    serve = Serve(tmp_path, workdir, "--workers", "1", ready_status=503)
    try:
        status, kind, body = serve.get("/healthz")
        assert (status, kind) == (503, "application/json")
        assert json.loads(body)["status"] == "unavailable"
        assert serve.get("/recommendations?browsed=p001")[0] == 503
        publishing.write_snapshot(bucket, TENANT, random_model("late-v1", 1))
        for _ in range(600):  # bounded wait for the loader thread (not a timed assert)
            status, _, body = serve.get("/healthz")
            if status == 200:
                break
            time.sleep(0.1)
        assert status == 200 and json.loads(body)["model_version"] == "late-v1"
        status, _, body = serve.get("/recommendations?browsed=p001&n=2")
        assert status == 200 and json.loads(body)["model_version"] == "late-v1"
    finally:
        serve.stop()
