"""Neighbor lists from Cloud Datastore (``SIMREC_SERVING_BACKEND=datastore``).

For deployments that keep the lists in Datastore (the original service's design) rather
than in memory: one batched ``get_multi`` per request fetches the ``ItemNeighbors``
entities (kind, key name = sku, unindexed ``items``/``scores``; written by
``beam/load_pipeline.py``) of the input items the in-process cache lacks. The cache is an
LRU with a TTL, keyed by (namespace, model version, sku); missing entities are cached
too, so unknown skus do not cost a round trip each time.

Lists are mapped onto the serving model's item indices (popularity, catalog and the
vocabulary still come from the model snapshot) and scored by the same kernel over a
small per-request CSR matrix whose rows are the query items: scores are rounded to
float32 exactly as the snapshot stores them, so both backends answer bit-identically.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from cachetools import TTLCache

from simrec.core.scoring import Scorer, make_scorer
from simrec.extras import require
from simrec.serving.model_holder import LoadedModel

ENTITY_KIND = "ItemNeighbors"  # as written by beam/load_pipeline.py
Row = tuple[np.ndarray, np.ndarray]  # neighbor item indices (int32), scores (float32)
_EMPTY: Row = (np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.float32))


class DatastoreUnavailable(RuntimeError):
    """A Datastore read failed; the request is answered 503."""


def default_client_factory(project: str) -> Callable[[str | None], Any]:
    """Clients per namespace; the google-cloud-datastore library honours
    ``DATASTORE_EMULATOR_HOST``."""

    def make(namespace: str | None) -> Any:
        datastore = require("google.cloud.datastore", "gcp")
        return datastore.Client(project=project, namespace=namespace or None)

    return make


class DatastoreNeighbors:
    """Cached, batched reads of neighbor lists; see the module docstring."""

    def __init__(
        self,
        client_factory: Callable[[str | None], Any],
        cache_items: int = 50_000,
        cache_seconds: float = 300.0,
        timer: Callable[[], float] | None = None,
    ) -> None:
        self._factory = client_factory
        self._clients: dict[str | None, Any] = {}
        self._cache: TTLCache | None = (
            TTLCache(maxsize=cache_items, ttl=cache_seconds, **({"timer": timer} if timer else {}))
            if cache_items > 0 and cache_seconds > 0
            else None
        )
        self._lock = threading.Lock()
        self.round_trips = 0  # get_multi calls made (tests and the benchmark read it)

    def _client(self, namespace: str | None) -> Any:
        client = self._clients.get(namespace)
        if client is None:
            with self._lock:
                client = self._clients.get(namespace)
                if client is None:
                    client = self._clients[namespace] = self._factory(namespace)
        return client

    def clear(self) -> None:
        if self._cache is not None:
            with self._lock:
                self._cache.clear()

    def rows(self, namespace: str | None, model: LoadedModel, items: Sequence[int]) -> list[Row]:
        """The neighbor rows of ``items`` (model indices), fetched in one round trip."""
        skus = model.snapshot.skus
        keys = [(namespace, model.version, skus[i]) for i in items]
        found: dict[tuple[str | None, str, str], Row] = {}
        if self._cache is not None:
            with self._lock:
                for key in keys:
                    row = self._cache.get(key)
                    if row is not None:
                        found[key] = row
        misses = list(dict.fromkeys(k for k in keys if k not in found))
        if misses:
            fetched = self._fetch(namespace, model, [k[2] for k in misses])
            for key in misses:
                found[key] = fetched.get(key[2], _EMPTY)
            if self._cache is not None:
                with self._lock:
                    for key in misses:
                        self._cache[key] = found[key]
        return [found[k] for k in keys]

    def _fetch(self, namespace: str | None, model: LoadedModel, skus: list[str]) -> dict[str, Row]:
        client = self._client(namespace)
        try:
            entities = client.get_multi([client.key(ENTITY_KIND, sku) for sku in skus])
        except Exception as exc:  # network, auth, quota: the request gets a 503
            message = f"reading {ENTITY_KIND} from Datastore failed: {exc}"
            raise DatastoreUnavailable(message) from exc
        finally:
            self.round_trips += 1
        index = model.sku_index
        out: dict[str, Row] = {}
        for entity in entities:
            pairs = [
                (index[sku], score)
                for sku, score in zip(entity.get("items") or [], entity.get("scores") or [],
                                      strict=False)
                if sku in index
            ]
            out[entity.key.name] = (
                np.fromiter((j for j, _ in pairs), dtype=np.int32, count=len(pairs)),
                # float64 in Datastore -> the float32 the snapshot stores
                np.fromiter((s for _, s in pairs), dtype=np.float64, count=len(pairs)).astype(
                    np.float32
                ),
            )
        return out

    def scorer(
        self, namespace: str | None, model: LoadedModel, items: Sequence[int]
    ) -> tuple[Scorer, np.ndarray]:
        """A scorer whose row ``q`` is the ``q``-th query item, and those row numbers."""
        rows = self.rows(namespace, model, items)
        content = model.content
        if content is not None:  # cold items score on their blended rows, as in memory
            skus = model.snapshot.skus
            rows = [content.blended_row(skus[i], i, row)[:2] if content.is_cold(i) else row
                    for i, row in zip(items, rows, strict=True)]  # fmt: skip
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum([len(r[0]) for r in rows], out=indptr[1:])
        if rows:
            indices = np.concatenate([r[0] for r in rows])
            scores = np.concatenate([r[1] for r in rows])
        else:
            indices, scores = _EMPTY
        scorer = make_scorer(indptr, indices, scores, n_cols=model.n_items)
        return scorer, np.arange(len(rows), dtype=np.int32)
