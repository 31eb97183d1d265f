"""The serving model, loaded from ``models/<tenant>/LATEST`` and refreshed without restart.

A long-running server (``background=True``: ``simrec serve`` and the Cloud Run function)
never loads a model on the request path: ``start()`` loads the first one at start (in
the caller, before the server takes requests, or in a loader thread), and when a request
finds the refresh check due (at most once every ``refresh_seconds``) it only wakes the
loader thread and goes on with the current model. The loader reads LATEST and, if it
names another version, loads that version aside and swaps a single reference: a request
pays at most that pointer read. A server's holders (``isolated``, as ``HolderRegistry``
makes them) build the version in a loader *process* and only map the file it writes
(``simrec.serving.model_image``), so a load never holds the server's GIL either: requests
run at full speed during a switch. Before the first model is loaded ``get()`` answers None
at once (``/healthz`` is then 503, so Cloud Run's startup probe holds traffic back) and
the loader re-reads LATEST at most every ``MISSING_RETRY_SECONDS``. A failed read or
load is logged and the old model stays. ``refresh_seconds == 0`` means never re-check
once a model is loaded.

Refresh is triggered by requests rather than a timer: a Cloud Run instance with
request-based billing has its CPU throttled between requests, so a timer would fire late
or never while a request always runs, and an idle instance spends nothing on refreshes.

``background=False`` (the one-shot CLI commands and tests) loads synchronously in
``get()`` instead, in this process (the same image arrays, built in memory).

``HOLDERS`` is the process's one cache of holders (per models root, tenant, refresh and
mode), used by every ``ServingApp``.
"""

from __future__ import annotations

import gc
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from simrec.core.content import ContentIndex, ContentParams
from simrec.core.recommender import Recommender
from simrec.core.scoring import Scorer, make_scorer
from simrec.core.snapshot import ModelSnapshot
from simrec.serving.catalog import ServingCatalog
from simrec.serving.model_image import (
    BLEND_ARRAYS,
    BLEND_SOURCES,
    SNAPSHOT_ARRAYS,
    ImageBuildError,
    build_image,
    load_image,
)
from simrec.serving.string_table import StringIndex, StringList
from simrec.storage import snapshots

log = logging.getLogger(__name__)

MISSING_RETRY_SECONDS = 1.0
MAX_OPEN_TENANTS = 64  # holders of tenants that are not configured, kept (LRU)
FAILED_RETRY_SECONDS = 30.0  # before a first model: how often a failed version is retried


@dataclass(frozen=True)
class LoadedModel:
    """An immutable serving model: the snapshot plus what requests look up.

    Everything a request needs is read from one version's image arrays
    (``simrec.serving.model_image``): the sku -> index table, the scorer over the CSR
    arrays, the popularity order and the catalog's masks and lists. The containers read
    the arrays in place (``StringIndex`` for a dict, memoryviews for lists), so wrapping
    an image, in memory or memory-mapped, costs nothing per item.
    """

    version: str
    snapshot: ModelSnapshot
    sku_index: Mapping[str, int]
    popular: np.ndarray  # item indices, most popular first (ties: index ascending)
    popular_list: Sequence[int]
    popularity: Sequence[float]
    scorer: Scorer
    recommender: Recommender
    catalog: ServingCatalog | None = None
    content: ContentIndex | None = None  # cold-item neighbors, with a catalog
    #: The second neighbor model (frequently bought together); None in snapshots
    #: built before it: /bought-together then answers the popularity fallback.
    bought_together: Recommender | None = None

    @classmethod
    def from_snapshot(cls, version: str, snapshot: ModelSnapshot) -> LoadedModel:
        """Built in this process (the one-shot CLI commands, tests)."""
        return cls.from_image(version, build_image(snapshot), snapshot.metadata)

    @classmethod
    def from_image(
        cls, version: str, arrays: Mapping[str, np.ndarray], metadata: dict[str, Any]
    ) -> LoadedModel:
        """Over an image's arrays (built here or mapped from the loader process's file)."""
        meta_version = str(metadata.get("version", ""))
        if meta_version and meta_version != version:
            log.warning("LATEST names %r but its metadata says %r", version, meta_version)
        snapshot = ModelSnapshot.prevalidated(
            skus=StringList(arrays, "skus"),
            metadata=metadata,
            **{name: arrays[name] for name in SNAPSHOT_ARRAYS},
        )
        popular = arrays["popular"]
        popular_list, popularity = memoryview(popular), memoryview(snapshot.popularity)
        # With cold items (simrec.core.content) the scorer reads their blended rows.
        csr = (arrays[name] for name in BLEND_ARRAYS) if BLEND_ARRAYS[0] in arrays else (
            snapshot.indptr, snapshot.indices, snapshot.scores)  # fmt: skip
        scorer = make_scorer(*csr)
        catalog = ServingCatalog(arrays) if "catalog_in_stock" in arrays else None
        content = ContentIndex(
            StringIndex(arrays, "content_skus"), arrays["content_indptr"],
            arrays["content_indices"], arrays["content_scores"], snapshot.popularity,
            ContentParams.from_metadata(metadata),
        ) if "content_indptr" in arrays else None  # fmt: skip
        if content is not None and BLEND_SOURCES in arrays:
            content.blended = tuple(arrays[n] for n in (*BLEND_ARRAYS, BLEND_SOURCES))  # type: ignore[assignment]
        shared = {
            "popularity": popularity,
            "popular": popular_list,
            "category": None if catalog is None else catalog.category,
            "popular_by_category": None if catalog is None else catalog.popular_by_category,
        }
        together = snapshot.bought_together()
        return cls(
            version=version,
            snapshot=snapshot,
            sku_index=StringIndex(arrays, "skus"),
            popular=popular,
            popular_list=popular_list,
            popularity=popularity,
            scorer=scorer,
            recommender=Recommender(snapshot, scorer=scorer, **shared),
            catalog=catalog,
            content=content,
            bought_together=None if together is None else Recommender(together, **shared),
        )

    @property
    def n_items(self) -> int:
        return self.snapshot.n_items


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
        isolated: bool = False,
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
        #: Build each version in a loader process and map its image (``model_image``):
        #: what a server's holders do (``HolderRegistry``), so no load holds its GIL.
        self.isolated = isolated
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
            model = self._load(version)
        except Exception as exc:
            self._failed = (version, self.clock())
            reason = " ".join(str(exc).split())
            if not isinstance(exc, ImageBuildError):  # the child's line names its type
                reason = f"{type(exc).__name__}: {reason}"
            log.error(  # one line: the reason is all an operator needs
                "loading model %r of tenant %r failed: %s; still serving %r",
                version,
                self.tenant,
                reason,
                current.version if current else None,
            )
            return
        self._model = model  # the single reference swap
        if self.background:
            # A server: move the objects allocated so far (the app's, the old model's
            # caches) out of the garbage collector's reach, so no full collection walks
            # them in a request's way. Freed as usual by reference counting.
            gc.freeze()
        log.info("serving model %r of tenant %r (%d items)", version, self.tenant, model.n_items)

    def _load(self, version: str) -> LoadedModel:
        if self.isolated:
            arrays, metadata = load_image(self.models_root, self.tenant, version)
            return LoadedModel.from_image(version, arrays, metadata)
        snapshot = snapshots.read_snapshot(self.models_root, self.tenant, version)
        return LoadedModel.from_snapshot(version, snapshot)


class HolderRegistry:
    """The process's model holders, one per (models root, tenant, refresh, background):
    the one cache of them, shared by every ``ServingApp`` of the process (the server's,
    the Cloud Function's, the CLI's).

    Holders of configured tenants (``pinned``) stay; others (``serving_tenants='*'``)
    are kept in LRU order, at most ``max_unpinned``, a dropped one closed. Background
    holders load in a loader process (``isolated``). A hit costs a dict read, no lock.
    """

    def __init__(self, max_unpinned: int = MAX_OPEN_TENANTS) -> None:
        self.max_unpinned = max_unpinned
        self._pinned: dict[tuple[str, str, float, bool], ModelHolder] = {}
        self._unpinned: OrderedDict[tuple[str, str, float, bool], ModelHolder] = OrderedDict()
        self._lock = threading.Lock()

    def get(
        self,
        models_root: str,
        tenant: str,
        refresh_seconds: float,
        background: bool = False,
        *,
        pinned: bool = True,
    ) -> ModelHolder:
        """The holder of a tenant's model (created on first use, then shared)."""
        key = (models_root, tenant, float(refresh_seconds), background)
        holder = self._pinned.get(key)
        if holder is not None:
            return holder
        with self._lock:
            holder = self._pinned.get(key) or self._unpinned.get(key)
            if holder is None:
                holder = ModelHolder(
                    models_root, tenant, refresh_seconds,
                    background=background, isolated=background,
                )  # fmt: skip
            if pinned:
                self._unpinned.pop(key, None)
                self._pinned[key] = holder
                return holder
            self._unpinned[key] = holder
            self._unpinned.move_to_end(key)
            while len(self._unpinned) > self.max_unpinned:
                (_, evicted, _, _), dropped = self._unpinned.popitem(last=False)
                dropped.close()
                log.info("dropped the idle model holder of tenant %r", evicted)
            return holder

    def find(
        self, models_root: str, tenant: str, refresh_seconds: float, background: bool = False
    ) -> ModelHolder | None:
        """The holder ``get`` would return, if it exists already (then used: LRU)."""
        key = (models_root, tenant, float(refresh_seconds), background)
        holder = self._pinned.get(key)
        if holder is not None:
            return holder
        with self._lock:
            holder = self._unpinned.get(key)
            if holder is not None:
                self._unpinned.move_to_end(key)
            return holder

    def tenants(self, models_root: str, *, pinned: bool) -> list[str]:
        """The tenants under ``models_root`` with a holder (unpinned: least recent first)."""
        with self._lock:
            keys = list(self._pinned if pinned else self._unpinned)
        return [tenant for root, tenant, _, _ in keys if root == models_root]

    def clear(self) -> None:
        """Forget every holder (tests point the endpoint at fresh folders)."""
        with self._lock:
            for holder in (*self._pinned.values(), *self._unpinned.values()):
                holder.close()
            self._pinned.clear()
            self._unpinned.clear()


HOLDERS = HolderRegistry()
