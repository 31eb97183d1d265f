"""Quality features beyond plain cosine, defined once for every engine.

Each is switchable (its "off" value leaves plain cosine unchanged) and was chosen by
offline evaluation (docs/evaluation.md):

* **time decay**: an event ``age_days`` days older than the window's last day counts
  ``0.5 ** (age_days / half_life_days)`` times its action weight, so last week's
  interest outweighs last month's. ``age_days`` is a whole number of days (the event's
  UTC day), so the factor takes one of ``window_days`` values; the Spark job looks them
  up from :func:`decay_table` instead of recomputing them, which keeps both engines bit
  for bit equal. ``half_life_days = 0`` is off.
  Decayed event values are summed in fixed point (:func:`to_fixed`, units of
  ``2**-FIXED_BITS``): integer sums do not depend on the order of the events, so a
  cell's value, and the cap's ranking of cells, are the same in every engine.
* **user down-weighting**: a user's matrix row (after the cap to ``max_items_per_user``)
  is scaled by ``f(n)``, ``n`` = the user's distinct items in the matrix. Very active
  users (wholesalers, crawlers, binge raters) co-occur with everything; without this they
  dominate every item's neighbors. ``"log"``: ``f(n) = 1 / log2(1 + n)``; ``"power"``:
  ``f(n) = n ** -alpha``; ``"none"``: ``f = 1``.
* **cell cap** (``cell_cap_percentile``, the matrix rule's, ``simrec.core.matrix``): cells
  capped at a percentile of the matrix's cells and divided by it. ``0`` is off.
* **shrinkage**: a pair's similarity becomes ``sim * n / (n + shrinkage)`` with ``n``
  the (estimated) users behind the pair, applied to the clipped estimate before top-K:
  a cosine of 1 from two shoppers is weak evidence, one from two hundred is strong.
  ``shrinkage = 0`` is off.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np

USER_WEIGHTINGS: tuple[str, ...] = ("none", "log", "power")
#: Resolution of decayed cell values: ``2**-40`` (about 1e-12); a cell may reach 2**23.
FIXED_BITS = 40
#: Values that switch each feature off (plain cosine). Run ids of runs with these values
#: are those of runs made before the features existed.
OFF: dict[str, object] = {
    "half_life_days": 0.0,
    "user_weighting": "none",
    "user_alpha": 0.5,
    "shrinkage": 0.0,
    "cell_cap_percentile": 0.0,
    "asymmetric_alpha": 0.5,
    "bm25_b": 0.0,
    "bm25_k1": 1.2,
    "popularity_discount": 0.0,
    "popularity_fill": 0,
    "tune_holdout_days": 0,
}


def validate(
    half_life_days: float = 0.0,
    user_weighting: str = "none",
    user_alpha: float = 0.5,
    shrinkage: float = 0.0,
) -> None:
    """Clear errors for bad feature parameters (both engines call this)."""
    if not (half_life_days >= 0 and np.isfinite(half_life_days)):
        raise ValueError(f"half_life_days must be >= 0 (0 = off), got {half_life_days!r}")
    if user_weighting not in USER_WEIGHTINGS:
        raise ValueError(
            f"user_weighting must be one of {', '.join(USER_WEIGHTINGS)}, got {user_weighting!r}"
        )
    if not (0 <= user_alpha <= 2):
        raise ValueError(f"user_alpha must be in [0, 2], got {user_alpha!r}")
    if not (shrinkage >= 0 and np.isfinite(shrinkage)):
        raise ValueError(f"shrinkage must be >= 0 (0 = off), got {shrinkage!r}")


def age_days(days: np.ndarray, reference: dt.date) -> np.ndarray:
    """Whole days from each event day (``datetime64[D]``-like) to ``reference`` (int64)."""
    ref = np.datetime64(reference, "D")
    return (ref - np.asarray(days, dtype="datetime64[D]")).astype(np.int64)


def decay(ages: np.ndarray, half_life_days: float) -> np.ndarray:
    """``0.5 ** (age / half_life_days)`` per age in days; all ones when off (0).

    Ages must be >= 0: an event after the reference day is a caller's error.
    """
    ages = np.asarray(ages, dtype=np.int64)
    if half_life_days <= 0:
        return np.ones(len(ages), dtype=np.float64)
    if len(ages) and ages.min() < 0:
        raise ValueError("events after the window's last day cannot be decayed")
    # Through a table of the distinct ages: the very values decay_table gives Spark.
    table = decay_table(int(ages.max()) + 1 if len(ages) else 0, half_life_days)
    return table[ages]


def to_fixed(values: np.ndarray) -> np.ndarray:
    """``floor(value * 2**FIXED_BITS)`` as int64 (Spark: ``floor(w * decay * 2^40)``)."""
    return np.floor(np.asarray(values, dtype=np.float64) * float(2**FIXED_BITS)).astype(np.int64)


def from_fixed(values: np.ndarray) -> np.ndarray:
    """Summed fixed-point values back to float64 (exact but for the int -> double step)."""
    return np.asarray(values, dtype=np.int64).astype(np.float64) * (1.0 / float(2**FIXED_BITS))


def decay_table(n_ages: int, half_life_days: float) -> np.ndarray:
    """Decay factor of ages ``0 .. n_ages - 1`` (index = age in days).

    Computed one scalar at a time (C ``pow``), so a factor never depends on the table's
    length or on a vectorised code path: both engines take the same bits.
    """
    if half_life_days <= 0:
        return np.ones(n_ages, dtype=np.float64)
    h = float(half_life_days)
    return np.array([0.5 ** (a / h) for a in range(n_ages)], dtype=np.float64)


def _factor(n: int, weighting: str, alpha: float) -> float:
    if weighting == "none":
        return 1.0
    if weighting == "log":
        return 1.0 / math.log2(1.0 + n)
    if weighting == "power":
        return float(n) ** -float(alpha)
    raise ValueError(f"unknown user_weighting {weighting!r}; expected {USER_WEIGHTINGS}")


def user_factor(n_items: np.ndarray, weighting: str, alpha: float = 0.5) -> np.ndarray:
    """Row scale ``f(n)`` per user with ``n`` distinct items (``n >= 1``)."""
    n = np.asarray(n_items, dtype=np.int64)
    if len(n) and n.min() < 1:
        raise ValueError("user_factor needs n_items >= 1")
    return user_factor_table(int(n.max(initial=0)), weighting, alpha)[n]


def user_factor_table(max_items: int, weighting: str, alpha: float = 0.5) -> np.ndarray:
    """``f(n)`` for ``n = 0 .. max_items`` (index = n; ``f(0)`` unused, set to 0).

    One scalar at a time (see :func:`decay_table`): the Spark job joins this table.
    """
    table = np.zeros(max_items + 1, dtype=np.float64)
    for n in range(1, max_items + 1):
        table[n] = _factor(n, weighting, alpha)
    return table


def shrink(similarity: np.ndarray, users: np.ndarray, shrinkage: float) -> np.ndarray:
    """``sim * n / (n + shrinkage)``, evaluated as ``(sim * n) / (n + shrinkage)``.

    The order of operations is part of the definition: the Spark job evaluates the same
    two IEEE operations, so both engines agree to the last bit. Off (0): ``sim``.
    """
    sim = np.asarray(similarity, dtype=np.float64)
    if shrinkage <= 0:
        return sim
    n = np.asarray(users, dtype=np.float64)
    return (sim * n) / (n + float(shrinkage))
