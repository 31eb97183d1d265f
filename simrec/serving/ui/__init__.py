"""The ``/ui`` page: look at what the endpoint answers, from a browser.

Static files (``static/``: one HTML page, one script, one style sheet; vanilla JS, no
CDN) shipped as package data and served by the same app as the API, so the page works
wherever the endpoint does and loads nothing from elsewhere: its Content-Security-Policy
allows only its own origin. The page calls the JSON endpoints (``/items``, ``/similar``,
``/recommendations``, ``/runs/latest``) and shows the sections of endpoints that other
models add (bought-together, trending) only when ``/openapi.json`` lists them.

``/ui/report`` is the latest evaluation report (``report.html`` written by ``simrec
evaluate``) from ``reports_uri``, when there is one.
"""

from __future__ import annotations

from importlib import resources

import orjson

from simrec import storage
from simrec.config import Settings
from simrec.core import layout

PREFIX = "/ui"
REPORT_PATH = "/ui/report"
REPORT_NAME = "evaluation/report.html"  # under reports_uri (simrec evaluate --out)
SUMMARY_NAME = "summary.json"  # under reports_uri (simrec run's work folder)
FILES = {
    "/ui": ("index.html", "text/html; charset=utf-8"),
    "/ui/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/ui/style.css": ("style.css", "text/css; charset=utf-8"),
}
# Only this origin: the page cannot load or send anything elsewhere.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
# The evaluation report is self-contained (inline SVG and styles), with no script.
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

Answer = tuple[int, list[tuple[str, str]], bytes]


def static_file(name: str) -> bytes:
    return resources.files(__package__).joinpath("static", name).read_bytes()


def _answer(status: int, content_type: str, data: bytes, csp: str) -> Answer:
    return (
        status,
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(data))),
            ("Content-Security-Policy", csp),
            ("X-Content-Type-Options", "nosniff"),
            ("Cache-Control", "no-cache"),
        ],
        data,
    )


def _error(status: int, message: str) -> Answer:
    data = orjson.dumps({"error": message, "field": "path"})
    return status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))], data


def report_uri(reports_uri: str) -> str:
    return layout.join(reports_uri, REPORT_NAME)


def summary_uri(reports_uri: str) -> str:
    return layout.join(reports_uri, SUMMARY_NAME)


class Pages:
    """The page's files (read once) and the report; ``answer`` is None off ``/ui``."""

    def __init__(self, settings: Settings) -> None:
        self.reports_uri = settings.reports_uri
        self._files: dict[str, Answer] = {}

    def keyed(self, path: str) -> bool:
        """Whether ``path`` is a page that needs an API key in public mode (the report:
        the page's own files are public, the shop's figures are not)."""
        return (path.rstrip("/") or "/") == REPORT_PATH

    def answer(self, method: str, path: str, query: str) -> Answer | None:
        path = path.rstrip("/") or "/"
        if path != PREFIX and not path.startswith(PREFIX + "/"):
            return None
        if method not in ("GET", "HEAD"):
            status, headers, data = _error(405, f"method {method} not allowed on {path}")
            return status, [*headers, ("Allow", "GET, HEAD")], data
        if path == REPORT_PATH:
            found = self._report()
        else:
            found = self._files.get(path)
            if found is None and path in FILES:
                name, content_type = FILES[path]
                found = self._files[path] = _answer(200, content_type, static_file(name), CSP)
        if found is None:
            found = _error(404, f"no page {path[:100]!r}; the page is {PREFIX}")
        status, headers, data = found
        return status, headers, b"" if method == "HEAD" else data

    def _report(self) -> Answer:
        """The report as it is now (re-read: the next evaluation replaces it)."""
        if not self.reports_uri:
            return _error(404, "no evaluation report: reports_uri is not set")
        uri = report_uri(self.reports_uri)
        try:
            data = storage.read_bytes(uri)
        except FileNotFoundError:
            return _error(404, f"no evaluation report at {uri}")
        return _answer(200, "text/html; charset=utf-8", data, REPORT_CSP)
