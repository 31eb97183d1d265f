"""Where every object of a run lives, relative to a bucket root.

```
exports/<tenant>/dt=YYYY-MM-DD/part-*.parquet     one folder per day
exports/<tenant>/runs/<run_id>/_MANIFEST.json     written last
exports/<tenant>/runs/<run_id>/rejects/...        malformed rows with their reason
similarities/<tenant>/<run_id>/neighbors/*.parquet  sku, neighbors[sku, score, users]
similarities/<tenant>/<run_id>/items/*.parquet    sku, users, weight (popularity)
similarities/<tenant>/<run_id>/_MANIFEST.json     written last
models/<tenant>/<version>/...                     immutable serving snapshot
models/<tenant>/LATEST                            names a complete version; swapped last
jobs/<job id>.json                                a launched job's record (simrec.stages.jobs)
```
"""

from __future__ import annotations

import datetime as dt

MANIFEST_NAME = "_MANIFEST.json"
LATEST_NAME = "LATEST"


def join(root: str, *parts: str) -> str:
    root = root.rstrip("/")
    return "/".join([root, *(p.strip("/") for p in parts if p)])


def export_day(root: str, tenant: str, day: dt.date) -> str:
    return join(root, "exports", tenant, f"dt={day.isoformat()}")


def export_run(root: str, tenant: str, run_id: str) -> str:
    return join(root, "exports", tenant, "runs", run_id)


def export_manifest(root: str, tenant: str, run_id: str) -> str:
    return join(export_run(root, tenant, run_id), MANIFEST_NAME)


def similarities(root: str, tenant: str, run_id: str) -> str:
    return join(root, "similarities", tenant, run_id)


def similarities_neighbors(root: str, tenant: str, run_id: str) -> str:
    return join(similarities(root, tenant, run_id), "neighbors")


def similarities_items(root: str, tenant: str, run_id: str) -> str:
    return join(similarities(root, tenant, run_id), "items")


def similarities_manifest(root: str, tenant: str, run_id: str) -> str:
    return join(similarities(root, tenant, run_id), MANIFEST_NAME)


def models(root: str, tenant: str) -> str:
    return join(root, "models", tenant)


def model_version(root: str, tenant: str, version: str) -> str:
    return join(models(root, tenant), version)


def latest_pointer(root: str, tenant: str) -> str:
    return join(models(root, tenant), LATEST_NAME)


def job_record(root: str, job_id: str) -> str:
    return join(root, "jobs", f"{job_id}.json")


def job_records(root: str) -> str:
    return join(root, "jobs")


def classify_object(name: str) -> tuple[str, str, str] | None:
    """``(stage, tenant, run_id)`` when an object name is a stage's manifest, else None.

    ``stage`` is ``"export"`` or ``"similarities"``. Handlers use this to ignore every
    object but the manifest they act on.
    """
    parts = name.strip("/").split("/")
    if len(parts) < 4 or parts[-1] != MANIFEST_NAME:
        return None
    if len(parts) >= 5 and parts[-5] == "exports" and parts[-3] == "runs":
        return "export", parts[-4], parts[-2]
    if parts[-4] == "similarities":
        return "similarities", parts[-3], parts[-2]
    return None
