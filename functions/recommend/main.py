"""recommend: HTTP function serving recommendations from the latest model snapshot.

Routes by path to ``simrec.serving.api`` (the endpoints are declared once, in
``simrec.serving.parameters``, and listed by ``/openapi.json``). The app, and with it the
model holders, is built on the first request from ``SIMREC_*`` settings, so importing
this module reads nothing. Models load in the background from then on (built in a loader
process and memory-mapped, ``simrec.serving.model_image``), never on the request path:
until the first one is loaded every endpoint, ``/healthz`` included, answers 503 (the
startup probe's first requests start the load and wait for it).
The Cloud Run image runs ``python -m simrec.serving.server`` (the same app); this handler
serves functions-framework deployments.
Requests pass ``simrec.serving.access.Gate`` first (the ``/ui`` page, CORS, API keys,
rate limit), as on the Cloud Run image.
"""

import threading

import flask
import functions_framework

from simrec import logs
from simrec.serving.access import Gate
from simrec.serving.api import ServingApp

logs.configure()

_app: Gate | None = None
_app_lock = threading.Lock()


def get_app() -> Gate:
    global _app
    if _app is None:
        with _app_lock:
            if _app is None:
                app = ServingApp(background_load=True)
                app.start(wait=False)
                _app = Gate(app)
    return _app


@functions_framework.http
def recommend(request: flask.Request) -> flask.Response:
    headers = {k.lower(): v for k, v in request.headers.items()}
    status, fields, data = get_app().respond(
        request.method, request.path, request.environ.get("QUERY_STRING", ""), headers
    )
    response = flask.Response(data, status=status)
    for name, value in fields:
        if name != "Content-Length":
            response.headers[name] = value
    return response
