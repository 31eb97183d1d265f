"""Where every object of a run lives, relative to a bucket root.

```
exports/<tenant>/dt=YYYY-MM-DD/part-*.parquet     one folder per day: user_id, sku,
                                                  action, ts, order_id, session_id
exports/<tenant>/runs/<run_id>/_MANIFEST.json     written last
exports/<tenant>/runs/<run_id>/rejects/...        malformed rows with their reason
similarities/<tenant>/<run_id>/neighbors/*.parquet  sku, neighbors[sku, score, users]
similarities/<tenant>/<run_id>/items/*.parquet    sku, users, weight (popularity),
                                                  recent_weight, prior_weight (trending)
similarities/<tenant>/<run_id>/bought_together/*.parquet  as neighbors, over baskets
similarities/<tenant>/<run_id>/_MANIFEST.json     written last
models/<tenant>/<version>/...                     immutable serving snapshot
models/<tenant>/LATEST                            names a complete version; swapped last
jobs/<job id>.json                                a launched job's record (simrec.stages.jobs)
```
"""

from __future__ import annotations

import datetime as dt
import re

MANIFEST_NAME = "_MANIFEST.json"
LATEST_NAME = "LATEST"
#: The similarity output's tables, one sub-folder each, in every engine.
NEIGHBORS = "neighbors"
ITEMS = "items"
#: The second neighbor model (frequently bought together, issue 16.1): neighbors'
#: columns, computed by the same steps over a basket x item matrix. Absent in runs made
#: before it existed.
BOUGHT_TOGETHER = "bought_together"
#: The grouping columns of an export day partition (nullable strings, besides the event
#: columns): the order and the session an event belongs to, where the source has them.
#: ``simrec.core.params.BASKET_KEYS`` names which one makes a basket.
ORDER_ID = "order_id"
SESSION_ID = "session_id"
GROUP_COLUMNS = (ORDER_ID, SESSION_ID)
BASKET_KEY_COLUMNS: dict[str, str | None] = {"order": ORDER_ID, "session": SESSION_ID, "day": None}

#: The similarity output's columns, as Arrow type names: the one schema every engine
#: writes (``simrec.storage.similarities`` renders it in Arrow, the Spark job as DDL) and
#: every reader (the Beam load, evaluation) reads. ``neighbors`` is a list of
#: ``NEIGHBOR_FIELDS`` structs, best first.
NEIGHBOR_FIELDS = (("sku", "string"), ("score", "double"), ("users", "double"))
NEIGHBORS_COLUMNS = ("sku", NEIGHBORS)
#: ``recent_weight`` / ``prior_weight``: the item's summed action weights in the recent
#: days and in the days before (``simrec.core.trending``).
ITEMS_FIELDS = (
    ("sku", "string"),
    ("users", "int64"),
    ("weight", "double"),
    ("recent_weight", "double"),
    ("prior_weight", "double"),
)

#: The one rule for every name used as a path segment (tenant, run id, model version,
#: LATEST's content): letters, digits, ``.``, ``_``, ``-``; starts with a letter or digit;
#: no ``..``; at most 128 characters. So no value read from a request, a message, an
#: object name or LATEST can leave its folder.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class BadName(ValueError):
    """A tenant, run id or version that is not a safe path segment."""


def is_name(value: object) -> bool:
    """Whether ``value`` is a safe path segment (see ``NAME_PATTERN``)."""
    return isinstance(value, str) and bool(NAME_PATTERN.fullmatch(value)) and ".." not in value


def check_name(value: str, what: str = "name") -> str:
    """``value`` if it is a safe path segment (see ``NAME_PATTERN``), else ``BadName``."""
    if not is_name(value):
        raise BadName(
            f"{what} {value!r} is not a valid name: use letters, digits, '.', '_' and '-' "
            "(starting with a letter or digit, no '..', at most 128 characters)"
        )
    return value


def join(root: str, *parts: str) -> str:
    root = root.rstrip("/")
    return "/".join([root, *(p.strip("/") for p in parts if p)])


def export_day(root: str, tenant: str, day: dt.date) -> str:
    return join(root, "exports", check_name(tenant, "tenant"), f"dt={day.isoformat()}")


def export_run(root: str, tenant: str, run_id: str) -> str:
    return join(
        root, "exports", check_name(tenant, "tenant"), "runs", check_name(run_id, "run id")
    )


def export_manifest(root: str, tenant: str, run_id: str) -> str:
    return join(export_run(root, tenant, run_id), MANIFEST_NAME)


def similarities(root: str, tenant: str, run_id: str) -> str:
    return join(root, "similarities", check_name(tenant, "tenant"), check_name(run_id, "run id"))


def similarities_manifest(root: str, tenant: str, run_id: str) -> str:
    return join(similarities(root, tenant, run_id), MANIFEST_NAME)


def similarity_outputs(output_uri: str) -> dict[str, str]:
    """The URIs of one similarity run's tables and manifest (its ``outputs``)."""
    return {
        NEIGHBORS: join(output_uri, NEIGHBORS),
        ITEMS: join(output_uri, ITEMS),
        BOUGHT_TOGETHER: join(output_uri, BOUGHT_TOGETHER),
        "manifest": join(output_uri, MANIFEST_NAME),
    }


def models(root: str, tenant: str) -> str:
    return join(root, "models", check_name(tenant, "tenant"))


def model_version(root: str, tenant: str, version: str) -> str:
    return join(models(root, tenant), check_name(version, "model version"))


def latest_pointer(root: str, tenant: str) -> str:
    return join(models(root, tenant), LATEST_NAME)


def job_record(root: str, job_id: str) -> str:
    return join(root, "jobs", f"{job_id}.json")


def job_records(root: str) -> str:
    return join(root, "jobs")


def object_uri(bucket: str, name: str) -> str:
    """URI of an object named by a storage event.

    On Google Cloud ``bucket`` is a bucket name; the local dispatcher delivers the
    absolute folder that stands for the bucket instead.
    """
    if bucket.startswith("/") or bucket.startswith("file://"):
        return join(bucket, name)
    return f"gs://{bucket}/{name.lstrip('/')}"


def classify_object(name: str) -> tuple[str, str, str] | None:
    """``(stage, tenant, run_id)`` when an object name is a stage's manifest, else None.

    ``stage`` is ``"export"`` or ``"similarities"``. Handlers use this to ignore every
    object but the manifest they act on.
    """
    parts = name.strip("/").split("/")
    if len(parts) < 4 or parts[-1] != MANIFEST_NAME:
        return None
    found = None
    if len(parts) >= 5 and parts[-5] == "exports" and parts[-3] == "runs":
        found = "export", parts[-4], parts[-2]
    elif parts[-4] == "similarities":
        found = "similarities", parts[-3], parts[-2]
    if found is None or not all(is_name(p) for p in found[1:]):
        return None
    return found
