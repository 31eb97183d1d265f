"""The serving model, loaded from ``models/<tenant>/LATEST`` and refreshed without restart.

A long-running server (``background=True``: ``simrec serve`` and the Cloud Run function)
never loads a model on the request path: ``start()`` loads the first one at start (in
the caller, before the server takes requests, or in a loader thread), and when a request
finds the refresh check due (at most once every ``refresh_seconds``) it only wakes the
loader thread and goes on with the current model. The loader reads LATEST and, if it
names another version, loads that version aside and swaps a single reference: a request
pays at most that pointer read. Before the first model is loaded ``get()`` answers None
at once (``/healthz`` is then 503, so Cloud Run's startup probe holds traffic back) and
the loader re-reads LATEST at most every ``MISSING_RETRY_SECONDS``. A failed read or
load is logged and the old model stays. ``refresh_seconds == 0`` means never re-check
once a model is loaded.

Refresh is triggered by requests rather than a timer: a Cloud Run instance with
request-based billing has its CPU throttled between requests, so a timer would fire late
or never while a request always runs, and an idle instance spends nothing on refreshes.

``background=False`` (the one-shot CLI commands and tests) loads synchronously in
``get()`` instead.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from simrec.core.scoring import Scorer, make_scorer, popularity_order
from simrec.core.snapshot import ModelSnapshot
from simrec.serving.catalog import ServingCatalog
from simrec.storage import snapshots

log = logging.getLogger(__name__)

MISSING_RETRY_SECONDS = 1.0
LOAD_SWITCH_INTERVAL = 0.0002  # seconds; see _short_gil_slices
FAILED_RETRY_SECONDS = 30.0  # before a first model: how often a failed version is retried


@dataclass(frozen=True)
class LoadedModel:
    """An immutable serving model: the snapshot plus what requests look up.

    Everything a request needs is precomputed here, once per version: the sku -> index
    dict, the scorer over the CSR arrays, the popularity order as a Python list (the
    fallback walks only its first few entries) and the catalog's masks and lists.
    """

    version: str
    snapshot: ModelSnapshot
    sku_index: dict[str, int]
    popular: np.ndarray  # item indices, most popular first (ties: index ascending)
    popular_list: list[int]
    popularity: list[float]
    scorer: Scorer
    catalog: ServingCatalog | None = None

    @classmethod
    def from_snapshot(cls, version: str, snapshot: ModelSnapshot) -> LoadedModel:
        if snapshot.version and snapshot.version != version:
            log.warning("LATEST names %r but its metadata says %r", version, snapshot.version)
        sku_index = {sku: i for i, sku in enumerate(snapshot.skus)}
        popular = popularity_order(snapshot.popularity)
        popular_list = popular.tolist()
        catalog = None
        if snapshot.catalog is not None:
            catalog = ServingCatalog(snapshot.catalog, sku_index, popular_list)
        return cls(
            version=version,
            snapshot=snapshot,
            sku_index=sku_index,
            popular=popular,
            popular_list=popular_list,
            popularity=snapshot.popularity.tolist(),
            scorer=make_scorer(snapshot.indptr, snapshot.indices, snapshot.scores),
            catalog=catalog,
        )

    @property
    def n_items(self) -> int:
        return self.snapshot.n_items


_slices_lock = threading.Lock()
_slices_users = 0
_slices_saved = 0.005


@contextlib.contextmanager
def _short_gil_slices() -> Iterator[None]:
    """While a model loads in a background thread, hand the GIL over every
    ``LOAD_SWITCH_INTERVAL`` seconds instead of Python's 5 ms: the load is mostly Python
    loops that hold the GIL, and each time a request's thread waits for it, it would wait
    a whole slice (several times per request)."""
    global _slices_users, _slices_saved
    with _slices_lock:
        if _slices_users == 0:
            _slices_saved = sys.getswitchinterval()
            sys.setswitchinterval(LOAD_SWITCH_INTERVAL)
        _slices_users += 1
    try:
        yield
    finally:
        with _slices_lock:
            _slices_users -= 1
            if _slices_users == 0:
                sys.setswitchinterval(_slices_saved)


class ModelHolder:
    """Holds the current ``LoadedModel`` of one tenant; see the module docstring."""

    def __init__(
        self,
        models_root: str,
        tenant: str,
        refresh_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        background: bool = False,
    ) -> None:
        if refresh_seconds < 0:
            raise ValueError("refresh_seconds must be >= 0")
        self.models_root = models_root
        self.tenant = tenant
        self.refresh_seconds = float(refresh_seconds)
        self.clock = clock
        self._model: LoadedModel | None = None
        #: What the last read of LATEST found: None before the first read (or after a failed
        #: one), False when the tenant has no published model, True when it has one.
        self.published: bool | None = None
        self._next_check = -math.inf
        self._lock = threading.Lock()
        self.background = background
        self._loader: threading.Thread | None = None
        self._wake = threading.Event()  # a check is due: the loader thread runs it
        self._done = threading.Event()  # no check is pending or running
        self._done.set()
        self._closed = False
        self._failed: tuple[str, float] | None = None  # (version, when) of a failed load

    @property
    def current(self) -> LoadedModel | None:
        """The model being served, without checking for a newer one."""
        return self._model

    def get(self) -> LoadedModel | None:
        """The current model (None before the first one), refreshing it when due.

        In background mode this never waits: a due check only wakes the loader thread.
        """
        if self.clock() < self._next_check:
            return self._model
        # Synchronous mode waits for a running load before the first model; background
        # mode never blocks a request.
        blocking = not self.background and self._model is None
        if not self._lock.acquire(blocking=blocking):
            return self._model
        try:
            if self.clock() >= self._next_check:
                self._next_check = self.clock() + self._interval()
                if self.background:
                    self._start_loader()
                else:
                    self._check()
                    self._next_check = self.clock() + self._interval()
        finally:
            self._lock.release()
        return self._model

    def start(self, wait: bool = True) -> LoadedModel | None:
        """Load the current model now (``wait``) or in the loader thread; at server start."""
        if not wait:
            with self._lock:
                self._next_check = self.clock() + self._interval()
                self._start_loader()
            return self._model
        self.refresh()
        return self._model

    def _start_loader(self) -> None:
        """Wake the loader thread (started once): an event set, all a request pays."""
        self._done.clear()
        self._wake.set()
        loader = self._loader
        if loader is None or not loader.is_alive():
            self._loader = threading.Thread(
                target=self._loader_loop, name=f"model-loader-{self.tenant}", daemon=True
            )
            self._loader.start()

    def _loader_loop(self) -> None:
        while True:
            self._wake.wait()
            if self._closed:
                self._done.set()
                return
            self._wake.clear()
            with self._lock:
                self._check()
                self._next_check = self.clock() + self._interval()
            if not self._wake.is_set():
                self._done.set()

    def close(self) -> None:
        """Stop the loader thread (a holder that is dropped); the model stays usable."""
        self._closed = True
        self._wake.set()

    def wait_for_loader(self, timeout: float | None = None) -> None:
        """Wait until the background loads asked for so far have finished (tests)."""
        self._done.wait(timeout)

    def refresh(self) -> bool:
        """Check LATEST now; True when a new version was swapped in."""
        with self._lock:
            before = self._model
            self._check()
            self._next_check = self.clock() + self._interval()
            return self._model is not before

    def _interval(self) -> float:
        if self._model is None:
            if self.refresh_seconds > 0:
                return min(self.refresh_seconds, MISSING_RETRY_SECONDS)
            return MISSING_RETRY_SECONDS
        return self.refresh_seconds if self.refresh_seconds > 0 else math.inf

    def _check(self) -> None:
        try:
            version = snapshots.latest_version(self.models_root, self.tenant)
        except Exception:
            log.exception(
                "reading LATEST of tenant %r under %s failed", self.tenant, self.models_root
            )
            self.published = None if self._model is None else True
            return
        self.published = version is not None or self._model is not None
        current = self._model
        if version is None or (current is not None and current.version == version):
            return
        failed = self._failed
        # Without a model LATEST is checked every second: not a reload each time.
        if current is None and failed and failed[0] == version and (
            self.clock() < failed[1] + FAILED_RETRY_SECONDS
        ):
            return
        try:
            with _short_gil_slices() if self.background else contextlib.nullcontext():
                snapshot = snapshots.read_snapshot(self.models_root, self.tenant, version)
                model = LoadedModel.from_snapshot(version, snapshot)
        except Exception:
            self._failed = (version, self.clock())
            log.exception(
                "loading model %r of tenant %r failed; still serving %r",
                version,
                self.tenant,
                current.version if current else None,
            )
            return
        self._model = model  # the single reference swap
        if self.background:
            # A server: move the model's objects out of the garbage collector's reach, so
            # no full collection walks its 10^5 containers (~20 ms) in a request's way.
            # Freed as usual by reference counting once no request holds them.
            gc.freeze()
        log.info("serving model %r of tenant %r (%d items)", version, self.tenant, model.n_items)
