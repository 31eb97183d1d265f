"""Serve the endpoint on this machine: ``ServingApp`` (itself a plain WSGI app) in gunicorn.

The same ``ServingApp`` the Cloud Function uses, so ``simrec serve`` answers exactly what
the deployed function answers. gunicorn's ``gthread`` workers: each worker process builds
its own app (and model holders) after the fork and loads the model before its first
request; the threads within a worker share it (the scoring kernel runs without the GIL
and keeps its buffers per thread). On a 2-core machine, 2 workers x 4 threads holds
thousands of requests a second (see ``bench/README.md``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from simrec.config import Settings
from simrec.serving.api import ServingApp


def wsgi_app(service: ServingApp) -> Callable[..., Iterable[bytes]]:
    """The WSGI callable answering every request with ``service``'s JSON."""
    return service


def serve(
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 1,
    threads: int = 8,
    *,
    access_log: bool = False,
) -> None:
    """Run gunicorn in the foreground until interrupted.

    ``access_log`` writes one line per request to stdout (off by default: at thousands of
    requests a second it costs more than the request itself).
    """
    from gunicorn.app.base import BaseApplication

    class _Gunicorn(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("threads", threads)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("keepalive", 30)
            self.cfg.set("backlog", 512)
            self.cfg.set("loglevel", "warning")  # start/stop chatter off; errors stay
            self.cfg.set("control_socket_disable", True)  # no ~/.gunicorn socket
            if access_log:
                self.cfg.set("accesslog", "-")

        def load(self) -> Callable[..., Iterable[bytes]]:
            service = ServingApp(settings, background_load=True)
            service.holder.get()  # load the model before the first request
            return wsgi_app(service)

    _Gunicorn().run()


def main_app(**_: Any) -> ServingApp:  # pragma: no cover - for `gunicorn 'module:main_app()'`
    """An app from ``SIMREC_*`` settings, for running gunicorn by hand."""
    return ServingApp(Settings())
