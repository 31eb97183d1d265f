"""The public mode: who may call the endpoint from where, and how often.

Private mode (the default: no ``api_keys``, no ``allowed_origins``) changes nothing;
Cloud Run's invoker IAM keeps callers out, and server-side callers send an ID token
(docs/deploy.md). In public mode the service is open to ``allUsers`` and this module,
in front of ``ServingApp`` (``Gate``), does what IAM no longer does:

* **CORS**: a browser's preflight (``OPTIONS`` with ``Origin`` and
  ``Access-Control-Request-Method``) is answered 204 with the CORS headers when the
  origin is allowed, 403 ``{"error", "field": "origin"}`` when not; answers to an
  allowed origin carry ``Access-Control-Allow-Origin`` (and ``Vary: Origin``); a request
  from an origin that is not allowed is answered 403 before it reaches the model. With
  no ``allowed_origins`` the ``Origin`` header is ignored (no CORS headers, as before).
* **API keys**: per shop, sent as the ``X-Api-Key`` header or the ``key`` query
  parameter; a missing key is 401, an unknown one 403 (``field``: ``key``). Keys are kept
  only as SHA-256 hashes (the secret holds ``{name: sha256 hex}``) and looked up by the
  given key's hash. They come from a ``KeySource``: a local file, or a Secret Manager
  secret's ``latest`` version; either is re-read every ``api_keys_refresh_seconds``, so
  adding a key version rotates keys without a redeploy.
* **Rate limit**: a token bucket per key name (``rate_limit_per_minute``,
  ``rate_limit_burst``), per server process: an empty bucket answers 429 with
  ``Retry-After`` (whole seconds). With N instances of W workers a key may make up to
  N x W times the rate; Cloud Run's ``max_instance_count`` bounds N.

The probes (``/healthz``, ``/startupz``), ``/openapi.json`` and the ``/ui`` page's files
need no key (the page asks for one when the API answers 401); the evaluation report
(``/ui/report``) does, like the API. ``Gate.respond`` is what the ASGI
server, the WSGI server and the Cloud Function handler call.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import unquote_plus

import orjson

from simrec.config import Settings
from simrec.extras import require

log = logging.getLogger(__name__)

KEY_HEADER = "x-api-key"
KEY_PARAM = "key"
OPEN_PATHS = frozenset({"/healthz", "/startupz", "/openapi.json"})
PREFLIGHT_MAX_AGE_SECONDS = 600
SECRET_PREFIX = "projects/"
Answer = tuple[int, list[tuple[str, str]], bytes]


def key_hash(key: str) -> str:
    """The stored form of an API key: its SHA-256, hex (what the secret holds)."""
    return hashlib.sha256(key.encode()).hexdigest()


def parse_keys(data: bytes, where: str) -> dict[str, str]:
    """A keys document -> ``{sha256 hex: key name}``; a one-line error naming ``where``."""
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise ValueError(f"API keys in {where} are not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"API keys in {where} must be a JSON object {{name: sha256 hex}}")
    out: dict[str, str] = {}
    for name, digest in doc.items():
        text = str(digest).strip().lower()
        if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
            raise ValueError(f"API key {name!r} in {where} is not a SHA-256 hex digest")
        out[text] = str(name)
    return out


# --- where keys come from ------------------------------------------------------------------
class KeySource(Protocol):
    """The keys document's current bytes (re-read by ``Keys`` every refresh interval)."""

    where: str

    def read(self) -> bytes: ...


@dataclass(frozen=True)
class FileKeys:
    """The embedded default: a JSON file on this machine."""

    path: str

    @property
    def where(self) -> str:
        return self.path

    def read(self) -> bytes:
        with open(self.path, "rb") as f:
            return f.read()


class SecretManagerKeys:
    """A Secret Manager secret's ``latest`` version (``projects/P/secrets/S``).

    ``AccessSecretVersion`` on ``<secret>/versions/latest``; the payload's CRC32C is
    checked when the response carries one (as Google's samples do). ``client`` is a
    ``secretmanager_v1.SecretManagerServiceClient`` (or anything with its
    ``access_secret_version(request=...)``), built on first use when not given.
    """

    def __init__(self, secret: str, client: Any = None) -> None:
        parts = secret.split("/")
        if len(parts) != 4 or parts[0] != "projects" or parts[2] != "secrets":
            raise ValueError(f"api_keys {secret!r}: expected projects/<project>/secrets/<id>")
        self.secret = secret
        self._client = client

    @property
    def where(self) -> str:
        return self.secret

    def read(self) -> bytes:
        if self._client is None:
            secretmanager = require("google.cloud.secretmanager_v1", "gcp")
            self._client = secretmanager.SecretManagerServiceClient()
        response = self._client.access_secret_version(
            request={"name": f"{self.secret}/versions/latest"}
        )
        data = bytes(response.payload.data)
        expected = response.payload.data_crc32c
        if expected:
            google_crc32c = require("google_crc32c", "gcp")
            if int(google_crc32c.value(data)) != int(expected):
                raise ValueError(f"{self.secret}: payload CRC32C mismatch")
        return data


def key_source(settings: Settings, client: Any = None) -> KeySource | None:
    """The one place a key source is chosen, from ``settings.api_keys``."""
    where = settings.api_keys.strip()
    if not where:
        return None
    if where.startswith(SECRET_PREFIX):
        return SecretManagerKeys(where, client)
    return FileKeys(where)


class Keys:
    """The current keys, re-read from the source every ``refresh_seconds``.

    Read at start; a failed read (no secret version yet, a grant still propagating, a
    bad document) is logged and then no key is valid until a re-read succeeds (fail
    closed). A failed re-read keeps the last good keys, so a bad rotation cannot lock
    every shop out. Re-reads happen in a background thread: a request never waits.
    """

    def __init__(
        self, source: KeySource, refresh_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.source = source
        self.refresh_seconds = refresh_seconds
        self.clock = clock
        self._by_hash: dict[str, str] = {}
        self._lock = threading.Lock()
        self._reading = True
        self.refresh()

    def refresh(self) -> None:
        """Re-read the source now (the background thread's work)."""
        try:
            self._by_hash = parse_keys(self.source.read(), self.source.where)
        except Exception as exc:
            log.error("reading the API keys from %s failed (%d keys kept): %s",
                      self.source.where, len(self._by_hash), exc)  # fmt: skip
        finally:
            self._next = self.clock() + self.refresh_seconds
            self._reading = False

    def _maybe_refresh(self) -> None:
        if self.clock() < self._next or self._reading:
            return
        with self._lock:
            if self._reading:
                return
            self._reading = True
        threading.Thread(target=self.refresh, name="api-keys", daemon=True).start()

    def name_of(self, key: str) -> str | None:
        """The name of the shop whose key this is, None when it is no key."""
        self._maybe_refresh()
        # Looked up by digest: how long a lookup takes tells nothing about any key.
        return self._by_hash.get(key_hash(key))


class RateLimiter:
    """A token bucket per key name: ``rate`` tokens a second, at most ``burst`` held."""

    def __init__(
        self, per_minute: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # name -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, name: str) -> float:
        """0 when the request may go, else the seconds until a token is there."""
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.get(name, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            if tokens >= 1.0:
                self._buckets[name] = (tokens - 1.0, now)
                return 0.0
            self._buckets[name] = (tokens, now)
            return (1.0 - tokens) / self.rate


def describe_public_mode(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` (the OpenAPI document) with the public mode in it: the key as a security
    scheme (optional: private mode needs none) and the answers the gate may give on
    every endpoint that needs a key."""
    error = {"$ref": "#/components/schemas/Error"}
    answers = {
        "401": "Public mode: no API key (`field`: key).",
        "403": "Public mode: an unknown API key (`field`: key) or a disallowed Origin "
        "(`field`: origin).",
        "429": "Public mode: the key's rate limit is reached; retry after `Retry-After` s.",
    }
    for path, item in doc["paths"].items():
        if path in OPEN_PATHS:
            continue
        for operation in item.values():
            operation["security"] = [{}, {"ApiKeyHeader": []}, {"ApiKeyQuery": []}]
            for status, description in answers.items():
                operation["responses"].setdefault(status, {
                    "description": description,
                    "content": {"application/json": {"schema": error}},
                })  # fmt: skip
    doc["components"]["securitySchemes"] = {
        "ApiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
        "ApiKeyQuery": {"type": "apiKey", "in": "query", "name": KEY_PARAM},
    }
    return doc


# --- the gate --------------------------------------------------------------------------------
def _json_answer(status: int, body: dict[str, Any]) -> Answer:
    data = orjson.dumps(body)
    return status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))], data


def _origins(value: str) -> frozenset[str]:
    return frozenset(o.strip().rstrip("/") for o in value.split(",") if o.strip())


def _strip_key(query: str) -> tuple[str, list[str]]:
    """The query string without its ``key=`` parameters (the rest left byte for byte, for
    the API to parse), and their decoded values."""
    if KEY_PARAM + "=" not in query:
        return query, []
    kept, keys = [], []
    for part in query.split("&"):
        name, _, value = part.partition("=")
        if name == KEY_PARAM:
            keys.append(unquote_plus(value))
        else:
            kept.append(part)
    return "&".join(kept), keys


class Gate:
    """``ServingApp`` (``service.respond``) behind the pages, CORS, keys and rate limit.

    ``respond(method, path, query, headers)``: ``headers`` maps lower-case names to
    values. Also a WSGI app (gunicorn's ``gthread`` worker runs it).
    """

    def __init__(self, service: Any, settings: Settings | None = None,
                 keys: Keys | None = None) -> None:  # fmt: skip
        from simrec.serving import ui

        s = settings or service.settings
        self.service = service
        self.pages = ui.Pages(s)
        self.origins = _origins(s.allowed_origins)
        self.any_origin = "*" in self.origins
        if keys is None:
            source = key_source(s)
            keys = Keys(source, s.api_keys_refresh_seconds) if source is not None else None
        self.keys = keys
        self.limiter = (
            RateLimiter(s.rate_limit_per_minute, s.rate_limit_burst)
            if s.rate_limit_per_minute > 0 and keys is not None
            else None
        )

    def _allowed(self, origin: str, headers: Mapping[str, str]) -> bool:
        if self.any_origin or origin in self.origins:
            return True
        host = headers.get("host", "")  # the page's own origin (the /ui page) is fine
        return bool(host) and origin.split("://", 1)[-1] == host

    def respond(self, method: str, path: str, query: str, headers: Mapping[str, str]) -> Answer:
        # Without allowed origins (private mode) Origin is ignored, as before.
        origin = headers.get("origin", "").rstrip("/") if self.origins else ""
        # With CORS on, every answer varies by Origin (so no cache mixes them up).
        cors: list[tuple[str, str]] = [("Vary", "Origin")] if self.origins else []
        if origin:
            if not self._allowed(origin, headers):
                answer = _json_answer(403, {"error": f"origin {origin[:200]!r} is not allowed",
                                            "field": "origin"})  # fmt: skip
                return answer
            cors.append(("Access-Control-Allow-Origin", origin))
        if method == "OPTIONS" and origin and "access-control-request-method" in headers:
            return (
                204,
                [
                    *cors,
                    ("Access-Control-Allow-Methods", "GET, HEAD"),
                    ("Access-Control-Allow-Headers", "X-Api-Key"),
                    ("Access-Control-Max-Age", str(PREFLIGHT_MAX_AGE_SECONDS)),
                    ("Content-Length", "0"),
                ],
                b"",
            )
        page = self.pages.answer(method, path, query) if not self.pages.keyed(path) else None
        if page is not None:  # the page's own files: no key (it asks for one)
            return page
        denied = self._check_key(path, query, headers)
        if isinstance(denied, tuple):
            status, out, data = denied
            return status, [*out, *cors], data
        page = self.pages.answer(method, path, denied)  # the report: a keyed page
        if page is not None:
            return page
        status, out, data = self.service.respond(method, path, denied)
        return status, [*out, *cors], data

    def _check_key(self, path: str, query: str, headers: Mapping[str, str]) -> Answer | str:
        """The query to serve (``key=`` removed), or the refusal. Without keys (private
        mode) the query is the API's to judge, ``key=`` included (an unknown parameter)."""
        if self.keys is None:
            return query
        query, in_query = _strip_key(query)
        if (path.rstrip("/") or "/") in OPEN_PATHS:
            return query
        given = [headers[KEY_HEADER]] if headers.get(KEY_HEADER) else []
        given += in_query
        if not given:
            return _json_answer(401, {
                "error": "an API key is needed: send it as the X-Api-Key header or key=",
                "field": "key",
            })  # fmt: skip
        if len(given) > 1:
            return _json_answer(400, {"error": "give the API key once", "field": "key"})
        name = self.keys.name_of(given[0])
        if name is None:
            return _json_answer(403, {"error": "unknown API key", "field": "key"})
        if self.limiter is not None:
            wait = self.limiter.take(name)
            if wait > 0:
                status, out, data = _json_answer(429, {
                    "error": f"rate limit of key {name!r} reached; retry later",
                    "field": "key",
                })  # fmt: skip
                return status, [*out, ("Retry-After", str(max(1, math.ceil(wait))))], data
        return query

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        """The WSGI app."""
        headers = {
            k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")
        }
        status, out, data = self.respond(
            environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""),
            environ.get("QUERY_STRING", ""), headers,
        )  # fmt: skip
        start_response(f"{status} {HTTPStatus(status).phrase}", out)
        return [data]


def header_map(pairs: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """ASGI's raw header pairs -> lower-case name -> value (the last one wins)."""
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in pairs}
