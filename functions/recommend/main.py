"""recommend: HTTP function serving recommendations from the latest model snapshot.

Routes by path to ``simrec.serving.api`` (``/recommendations``, ``/similar``,
``/healthz``, ``/make_recommendation``). The app, and with it the model holder, is built
on the first request from ``SIMREC_*`` settings, so importing this module reads nothing.
"""

import threading

import flask
import functions_framework

from simrec.serving.api import ServingApp

_app: ServingApp | None = None
_app_lock = threading.Lock()


def get_app() -> ServingApp:
    global _app
    with _app_lock:
        if _app is None:
            _app = ServingApp()
        return _app


@functions_framework.http
def recommend(request: flask.Request) -> tuple[dict, int, dict[str, str]]:
    body, status = get_app().handle(request)
    headers = {"Allow": "GET, HEAD"} if status == 405 else {}
    return body, status, headers
