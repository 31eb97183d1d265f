"""Hand-built served models: one builder from neighbor rows (the tests state a model as
rows they can read) and the small catalog shop several serving tests and
``tools/serving_responses.py`` answer from."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from simrec.core.snapshot import ModelSnapshot

Rows = Mapping[int, Sequence[tuple[int, float]]]


def snapshot_from_rows(
    skus: list[str], rows: Rows, popularity: Any, metadata: dict[str, Any],
    *, scale: float = 1.0, **fields: Any,
) -> ModelSnapshot:  # fmt: skip
    """Item ``i``'s neighbors are ``rows[i]`` (``(j, score)`` in served order, none when
    missing), scores times ``scale``, one user per pair; ``fields`` are the snapshot's
    optional parts (catalog, trending)."""
    indptr, indices, scores = [0], [], []
    for i in range(len(skus)):
        for j, s in rows.get(i, []):
            indices.append(j)
            scores.append(s * scale)
        indptr.append(len(indices))
    return ModelSnapshot(
        skus=skus,
        indptr=np.array(indptr),
        indices=np.array(indices),
        scores=np.array(scores),
        users=np.ones(len(indices)),
        popularity=np.array(popularity),
        metadata=metadata,
        **fields,
    )


#   a -> b 0.75, c 0.375        popularity: a 10, b 8, c 9, d 3, e 12, f 0
#   b -> a 0.75, d 0.5, c 0.25  catalog: a X in, b X out, c Y in, d Y in, e X in,
#   c -> a 0.375, b 0.25                 f not listed (no category, not in stock)
#   d -> b 0.5, f 0.3
SKUS = ["a", "b", "c", "d", "e", "f"]
ROWS = {0: [(1, 0.75), (2, 0.375)], 1: [(0, 0.75), (3, 0.5), (2, 0.25)],
        2: [(0, 0.375), (1, 0.25)], 3: [(1, 0.5), (5, 0.3)]}  # fmt: skip
POPULARITY = [10.0, 8.0, 9.0, 3.0, 12.0, 0.0]
CATALOG = {
    "sku": ["a", "b", "c", "d", "e", "zzz"],
    "category": ["X", "X", "Y", "Y", "X", "Z"],
    "in_stock": [True, False, True, True, True, True],
    "price": [10.0, 20.0, 5.5, 7.0, 1.0, 2.0],
}


def catalog_shop(metadata: dict[str, Any], catalog: dict | None = CATALOG) -> ModelSnapshot:
    """The six-item shop drawn above."""
    return snapshot_from_rows(SKUS, ROWS, POPULARITY, metadata, catalog=catalog)
