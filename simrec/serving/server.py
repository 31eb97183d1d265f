"""Serve the endpoint on this machine and on Cloud Run: ``ServingApp`` in gunicorn.

The same ``ServingApp`` the Cloud Function handler uses, so ``simrec serve`` answers
exactly what the deployed service answers. Each gunicorn worker process builds its own
app (and model holders) after the fork and loads the default tenant's published model
*before* it accepts a connection (``ReadyAfterLoad``; a heartbeat thread keeps gunicorn
from taking the long load for a hung worker). All workers share the listening socket, so
while one worker still loads, connections go to those that are ready, or wait in the
backlog until the first is: with several workers a client never gets a 503 from a worker
that merely started later (bench/server_start.py). Only a tenant with no model published
yet (or a failed load) is answered 503 (``/healthz`` too), and later versions load in the
background as before.

Two worker models (``SERVERS``), measured side by side by ``bench/http_load.py`` (one run,
1 worker, 16 connections: uvicorn 1.9x gthread's mixed-request throughput, 1.3x on a
trivial endpoint) and chosen on that and on what follows:

* ``uvicorn`` (the default, ``PRODUCTION_SERVER``): one asyncio event loop per worker
  (uvicorn's h11 protocol through ``uvicorn-worker``), ``AsgiApp`` calling the WSGI-free
  core of ``ServingApp`` inline (an in-memory request is tens of microseconds of CPU; the
  Datastore backend, which waits on the network, runs in a thread). A connection costs
  no thread until its request is complete, so slow or half-open clients cannot take the
  server's concurrency away, and ``HeaderTimeoutH11Protocol`` closes a connection whose
  request headers are not complete after ``HEADER_TIMEOUT_SECONDS``.
* ``gthread``: gunicorn's threaded worker, kept for comparison. A thread is bound to a
  connection from its first byte to the end of its request, so N half-open connections
  block N threads for good (gunicorn has no header timeout).

Every limit the API documents must be reachable over HTTP: the server accepts request
lines up to ``max_request_line(max_skus)``, derived from the same constants the API
validates with (plus ``HEADER_FIELDS_BYTES`` of header fields), and answers a longer
request line, longer headers or a malformed request with a JSON error too (414, 431,
400), never an HTML page. (``gthread`` is given no line limit instead, since gunicorn
caps any other value at 8,190 bytes.) On Cloud Run ``WORKERS`` sets the worker count
(one per vCPU).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import threading
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import orjson

from simrec import logs
from simrec.config import Settings
from simrec.serving import api
from simrec.serving.access import Gate, header_map
from simrec.serving.api import ServingApp

PRODUCTION_SERVER = "uvicorn"
SERVERS = ("uvicorn", "gthread")
HEADER_TIMEOUT_SECONDS = 10.0  # a request's line and headers must arrive within this
KEEPALIVE_SECONDS = 30  # an idle kept-alive connection is closed after this
LINGER_SECONDS = 2.0  # after an error answer, input is read and dropped this long
HEADER_FIELDS_BYTES = 16_384  # room for the request's header fields besides its line
HEARTBEAT_SECONDS = 1.0  # a worker loading its first model tells the arbiter it lives


def max_request_line(max_skus: int) -> int:
    """The longest request line the API can accept: method, the longest endpoint path,
    ``?``, a query string of ``api.max_query_bytes(max_skus)`` bytes and the version."""
    longest_path = max(len(p) for p in api.ENDPOINTS)
    return len("HEAD ") + longest_path + 1 + api.max_query_bytes(max_skus) + len(" HTTP/1.1")


def error_body(status: int, message: str) -> bytes:
    """The JSON error the server itself answers (before the app sees the request)."""
    return orjson.dumps({"error": message, "field": "request", "status": status})


# --- ASGI ---------------------------------------------------------------------------------
class AsgiApp:
    """``ServingApp`` as an ASGI 3 application (HTTP and lifespan scopes)."""

    def __init__(self, service: ServingApp) -> None:
        self.service = service
        self.gate = Gate(service)  # the /ui page, CORS, API keys, rate limit
        # The in-memory backend never waits on I/O: run requests inline on the loop.
        self.inline = service.datastore is None

    async def __call__(
        self,
        scope: dict[str, Any],
        receive: Callable[[], Awaitable[dict[str, Any]]],
        send: Callable[[dict[str, Any]], Awaitable[None]],
    ) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if kind != "http":
            return
        method, path = scope["method"], scope["path"]
        query = scope["query_string"].decode("latin-1")
        fields = header_map(scope.get("headers", ()))
        if self.inline:
            status, headers, data = self.gate.respond(method, path, query, fields)
        else:
            status, headers, data = await asyncio.to_thread(
                self.gate.respond, method, path, query, fields
            )
        await send({
            "type": "http.response.start",
            "status": status,
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
        })  # fmt: skip
        await send({"type": "http.response.body", "body": data})


def _h11_protocol() -> type:
    """uvicorn's h11 protocol with a header timeout and JSON protocol errors."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderTimeoutH11Protocol(H11Protocol):
        """Closes a connection whose request line and headers are not complete within
        ``HEADER_TIMEOUT_SECONDS`` (with a JSON 408 if part of a request came; silently
        if the connection never sent a byte), and answers an
        over-long request line with a JSON 414, over-long header fields with a JSON 431
        and a malformed request with a JSON 400, instead of plain text."""

        header_timer: asyncio.TimerHandle | None = None
        discarding = False  # an error was answered: drop whatever the client still sends

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_header_timer()

        def data_received(self, data: bytes) -> None:
            if self.discarding:
                return
            super().data_received(data)
            if self.transport.is_closing():
                self._cancel_header_timer()
            elif self.conn.their_state is h11.IDLE:  # still inside a request's headers
                self._arm_header_timer()
            else:
                self._cancel_header_timer()

        def _arm_header_timer(self) -> None:
            if self.header_timer is None:
                self.header_timer = self.loop.call_later(
                    HEADER_TIMEOUT_SECONDS, self._header_timeout
                )

        def _cancel_header_timer(self) -> None:
            if self.header_timer is not None:
                self.header_timer.cancel()
                self.header_timer = None

        def _header_timeout(self) -> None:
            self.header_timer = None
            idle = self.conn.their_state is h11.IDLE
            if not idle or self.discarding or self.transport.is_closing():
                return
            if not self.conn.trailing_data[0]:
                # Nothing sent at all: close as an idle kept-alive connection is closed
                # (an unasked-for 408 could be taken by a proxy as its next answer).
                self.transport.close()
                return
            message = f"request headers not complete within {HEADER_TIMEOUT_SECONDS:g} s"
            self._send_error(408, "Request Timeout", message)

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_header_timer()
            super().connection_lost(exc)

        def send_400_response(self, msg: str) -> None:
            pending = self.conn.trailing_data[0]
            limit = self.config.h11_max_incomplete_event_size
            if limit is None or len(pending) <= limit:
                self._send_error(400, "Bad Request", "malformed HTTP request")
            elif b"\r\n" in pending:  # the line is complete: the header fields are too long
                self._send_error(
                    431, "Request Header Fields Too Large",
                    f"request line and headers longer than {limit} bytes",
                )  # fmt: skip
            else:
                self._send_error(
                    414, "URI Too Long", f"request line and headers longer than {limit} bytes"
                )

        def _send_error(self, status: int, reason: str, message: str) -> None:
            """Answer and close without losing the answer: a client still sending would
            get a TCP reset (and drop our response unread) if we closed with its bytes
            unread, so shut down our side, discard what still arrives, close later."""
            body = error_body(status, message)
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ]
            conn = h11.Connection(h11.SERVER)  # a fresh state: the old one has failed
            conn.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            conn.next_event()
            out = conn.send(h11.Response(status_code=status, headers=headers,
                                         reason=reason.encode()))  # fmt: skip
            out += conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage())
            self.discarding = True
            self._cancel_header_timer()
            self.transport.write(out)
            try:
                self.transport.write_eof()
            except (NotImplementedError, RuntimeError, OSError):
                self.transport.close()
                return
            self.loop.call_later(LINGER_SECONDS, self.transport.close)

    return HeaderTimeoutH11Protocol


class ReadyAfterLoad:
    """Mixin of a gunicorn worker class: the app is built (its model loaded, see
    ``serve``) before the worker serves, with the worker's heartbeat kept meanwhile.

    gunicorn builds the app in ``load_wsgi``, before the worker's accept loop, but only
    the loop notifies the arbiter: a load longer than ``timeout`` would be killed."""

    notify: Callable[[], None]

    def load_wsgi(self) -> None:
        loaded = threading.Event()

        def beat() -> None:
            while not loaded.wait(HEARTBEAT_SECONDS):
                self.notify()

        threading.Thread(target=beat, name="load-heartbeat", daemon=True).start()
        try:
            super().load_wsgi()  # type: ignore[misc]
        finally:
            loaded.set()


def uvicorn_worker_class() -> type:
    """The gunicorn worker class for ``uvicorn`` (``uvicorn-worker`` with our protocol)."""
    from uvicorn_worker import UvicornWorker

    class SimrecUvicornWorker(ReadyAfterLoad, UvicornWorker):
        CONFIG_KWARGS = {"loop": "asyncio", "http": _h11_protocol(), "lifespan": "off"}

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            # gunicorn's own limits, given by gunicorn_options(), bound h11's buffer.
            self.config.h11_max_incomplete_event_size = (
                self.cfg.limit_request_line + self.cfg.limit_request_field_size
            )

    return SimrecUvicornWorker


def gthread_worker_class() -> type:
    """gunicorn's ``gthread`` worker that loads its model before serving."""
    from gunicorn.workers.gthread import ThreadWorker

    class SimrecThreadWorker(ReadyAfterLoad, ThreadWorker):
        pass

    return SimrecThreadWorker


# --- gunicorn -------------------------------------------------------------------------------
def gunicorn_options(
    settings: Settings,
    host: str,
    port: int,
    workers: int,
    threads: int,
    server: str = PRODUCTION_SERVER,
    access_log: bool = False,
) -> dict[str, Any]:
    """gunicorn's settings for ``server`` (one place for ``simrec serve`` and Cloud Run)."""
    if server not in SERVERS:
        raise ValueError(f"server must be one of {', '.join(SERVERS)}, got {server!r}")
    options: dict[str, Any] = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "keepalive": KEEPALIVE_SECONDS,
        "backlog": 2048,
        "loglevel": "warning",  # start/stop chatter off; errors stay
        "logconfig_dict": logs.gunicorn_logconfig(),  # its errors as Cloud Logging JSON
        "control_socket_disable": True,  # no ~/.gunicorn socket
        "graceful_timeout": 10,
    }
    line = max_request_line(settings.max_skus_per_request)
    if server == "gthread":
        # gunicorn caps the line at 8190 bytes unless 0 (unlimited) is given.
        options.update(worker_class="simrec.serving.server.SimrecThreadWorker",
                       threads=threads, limit_request_line=0)  # fmt: skip
    else:
        options.update(
            worker_class="simrec.serving.server.SimrecUvicornWorker", limit_request_line=line
        )
    options["limit_request_field_size"] = HEADER_FIELDS_BYTES
    if access_log:
        options["accesslog"] = "-"
    return options


def serve(
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 1,
    threads: int = 8,
    *,
    server: str = PRODUCTION_SERVER,
    header_timeout: float = HEADER_TIMEOUT_SECONDS,
    access_log: bool = False,
) -> None:
    """Run gunicorn in the foreground until interrupted.

    ``threads`` applies to ``gthread`` only, ``header_timeout`` to ``uvicorn`` only.
    ``access_log`` writes one line per request to stdout (off by default: at thousands of
    requests a second it costs more than the request itself).
    """
    from gunicorn.app.base import BaseApplication

    logs.configure()  # before the fork: every worker inherits the one handler
    global HEADER_TIMEOUT_SECONDS
    HEADER_TIMEOUT_SECONDS = header_timeout  # the forked workers inherit it
    options = gunicorn_options(settings, host, port, workers, threads, server, access_log)

    class _Gunicorn(BaseApplication):
        def load_config(self) -> None:
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Callable[..., Iterable[bytes]] | AsgiApp:
            service = ServingApp(settings, background_load=True)
            # The default tenant's model before this worker accepts (ReadyAfterLoad keeps
            # its heartbeat); other tenants and later versions load in the background.
            service.start(wait=True)
            return Gate(service) if server == "gthread" else AsgiApp(service)

    _Gunicorn().run()


def __getattr__(name: str) -> Any:  # gunicorn imports the worker class by dotted name
    if name == "SimrecUvicornWorker":
        return uvicorn_worker_class()
    if name == "SimrecThreadWorker":
        return gthread_worker_class()
    raise AttributeError(name)


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - the Cloud Run image
    """``python -m simrec.serving.server``: serve from ``SIMREC_*`` settings on ``$PORT``."""
    parser = argparse.ArgumentParser(description="serve the recommend endpoint")
    parser.add_argument("--host", default="0.0.0.0")  # noqa: S104 - inside a container
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WORKERS", "1")))
    parser.add_argument("--server", choices=SERVERS, default=PRODUCTION_SERVER)
    args = parser.parse_args(argv)
    serve(Settings(), host=args.host, port=args.port, workers=args.workers, server=args.server)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
