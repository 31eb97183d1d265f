"""Serve the endpoint on this machine: a plain WSGI app over ``ServingApp`` in gunicorn.

The same ``ServingApp`` the Cloud Function uses, so ``simrec serve`` answers exactly what
the deployed function answers. Each gunicorn worker builds its own app (and model
holder) after the fork; threads within a worker share it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.wrappers import Request, Response

from simrec.config import Settings
from simrec.serving.api import ServingApp


def wsgi_app(service: ServingApp) -> Callable[..., Iterable[bytes]]:
    """A WSGI callable answering every request with ``service.handle``'s JSON."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        body, status = service.handle(Request(environ))
        headers = {"Allow": "GET, HEAD"} if status == 405 else {}
        response = Response(
            json.dumps(body), status=status, mimetype="application/json", headers=headers
        )
        return response(environ, start_response)

    return app


def serve(
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 1,
    threads: int = 8,
) -> None:
    """Run gunicorn in the foreground until interrupted."""
    from gunicorn.app.base import BaseApplication

    class _Gunicorn(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("threads", threads)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("accesslog", "-")

        def load(self) -> Callable[..., Iterable[bytes]]:
            service = ServingApp(settings)
            service.holder.get()  # load the model before the first request
            return wsgi_app(service)

    _Gunicorn().run()
