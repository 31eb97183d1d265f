"""The recommend function behind a production WSGI server (gunicorn, threaded workers).

The app is functions-framework's own, built from ``functions/recommend/main.py``: the
same code Cloud Run serves.
"""

from __future__ import annotations

import os
from typing import Any

from gunicorn.app.base import BaseApplication

from simrec import paths
from simrec.config import Settings, settings_to_env


def create_wsgi_app(settings: Settings | None = None):
    """functions-framework's WSGI app for the recommend function."""
    import functions_framework

    if settings is not None:
        os.environ.update(settings_to_env(settings))
    return functions_framework.create_app(
        target="recommend", source=str(paths.function_source("recommend"))
    )


class _Gunicorn(BaseApplication):
    def __init__(self, app: Any, options: dict[str, Any]) -> None:
        self.application = app
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return self.application


def serve(
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 1,
    threads: int = 8,
) -> None:
    """Serve until interrupted. Each worker loads the model once, then refreshes it."""
    app = create_wsgi_app(settings)
    _Gunicorn(
        app,
        {
            "bind": f"{host}:{port}",
            "workers": workers,
            "threads": threads,
            "worker_class": "gthread" if threads > 1 else "sync",
            "timeout": 60,
            "keepalive": 5,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": "warning",
        },
    ).run()
