"""A serving model version as flat arrays, built off the serving process and memory-mapped.

Building what requests look up (reading the snapshot from storage, decoding it,
validating it, the sku table, the popularity order, the catalog arrays) is seconds of
Python for a large model. In a server's own process that work holds the GIL and every
request waits for it, so a long-running server builds it in a child process
(``python -m simrec.serving.model_image``, at lower CPU priority) which writes one
*image* file: a small JSON header (metadata, and each array's dtype, offset and length)
followed by the arrays, 64-byte aligned. The server maps that file read-only and wraps
the arrays (``np.frombuffer``, no copy, no per-item work: the time to map a file), then
swaps its model reference; see ``simrec.serving.model_holder``.

The image lives in a fresh folder under the temp dir, removed as soon as it is mapped
(or the build failed): on Linux the pages stay valid until the last array over them is
dropped, i.e. until the model is replaced and its last request has finished. Only a
server killed while a child is building leaves a ``simrec-model-*`` folder behind.

On Cloud Run the temp dir is in memory and counts against the instance's memory: a
model costs its image once (the mapped pages *are* the model, no second copy), and
while a new version loads the instance holds the old model, the new image and the
child's working set (about two copies of the snapshot) at once: size the instance
memory for that peak.

A child that fails (corrupt snapshot, storage error, killed by the OOM killer) raises
``ImageBuildError`` with its one-line reason; the holder keeps serving the old model.
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from simrec.core.content import (
    ContentIndex,
    ContentParams,
    catalog_columns,
    content_neighbors,
)
from simrec.core.scoring import popularity_order
from simrec.core.snapshot import BOUGHT_TOGETHER_ARRAYS, ModelSnapshot
from simrec.serving.catalog import catalog_arrays
from simrec.serving.string_table import StringIndex, string_table

Arrays = dict[str, np.ndarray]

MAGIC = b"SIMRECI1"
ALIGN = 64  # array offsets in the image: aligned for the scoring kernel
IMAGE_NAME = "model.image"
TEMP_PREFIX = "simrec-model-"
BUILD_TIMEOUT_SECONDS = 1800.0
CHILD_NICENESS = 10  # the builder yields the CPU to request threads
SNAPSHOT_ARRAYS = (
    "indptr", "indices", "scores", "users", "popularity", "trending", "trending_scores",
    *BOUGHT_TOGETHER_ARRAYS,  # empty when the snapshot has no bought-together model
)  # fmt: skip
BLEND_ARRAYS = ("blend_indptr", "blend_indices", "blend_scores")  # simrec.core.content
BLEND_SOURCES = "blend_sources"  # each blended entry's source bits (its /similar reason)


class ImageBuildError(RuntimeError):
    """The loader process could not build the image (its reason, one line)."""


def build_image(snapshot: ModelSnapshot) -> Arrays:
    """Every array a ``LoadedModel`` reads, from a (validated) snapshot."""
    arrays: Arrays = {name: getattr(snapshot, name) for name in SNAPSHOT_ARRAYS}
    arrays.update(string_table(snapshot.skus, "skus"))
    popular = popularity_order(snapshot.popularity)
    arrays["popular"] = popular
    if snapshot.catalog is not None:
        sku_index = {sku: i for i, sku in enumerate(snapshot.skus)}
        arrays.update(catalog_arrays(snapshot.catalog, sku_index, popular))
        params = ContentParams.from_metadata(snapshot.metadata)
        arrays.update(
            content_arrays(snapshot.catalog, snapshot.skus, snapshot.popularity, params)
        )
        content = ContentIndex(
            StringIndex(arrays, "content_skus"), arrays["content_indptr"],
            arrays["content_indices"], arrays["content_scores"], snapshot.popularity, params,
        )  # fmt: skip
        blended = content.blended_matrix(
            snapshot.skus, snapshot.indptr, snapshot.indices, snapshot.scores, sources=True
        )
        if blended is not None:  # what the scorer reads: cold rows blended, warm as they are
            arrays.update(zip((*BLEND_ARRAYS, BLEND_SOURCES), blended, strict=True))
    return arrays


def content_arrays(
    catalog: Any, skus: Any, popularity: np.ndarray, params: ContentParams
) -> Arrays:
    """The cold-item content neighbors (``simrec.core.content``) as image arrays: built
    here, with the catalog, so the TF-IDF products run in the loader process."""
    catalog_skus, indptr, indices, scores = content_neighbors(
        catalog_columns(catalog), skus, popularity, params
    )
    return {
        **string_table(catalog_skus, "content_skus"),
        "content_indptr": indptr,
        "content_indices": indices,
        "content_scores": scores,
    }


def write_image(path: str, arrays: Mapping[str, np.ndarray], metadata: dict[str, Any]) -> None:
    """One file: MAGIC, header length (8 bytes), JSON header, aligned arrays."""
    layout: dict[str, list[Any]] = {}
    offset = 0
    for name, array in arrays.items():
        layout[name] = [array.dtype.str, offset, int(array.size)]
        offset += -(-array.nbytes // ALIGN) * ALIGN
    header = json.dumps({"metadata": metadata, "arrays": layout}).encode()
    start = -(-(len(MAGIC) + 8 + len(header)) // ALIGN) * ALIGN
    with open(path, "wb") as f:
        f.write(MAGIC + len(header).to_bytes(8, "little") + header)
        for name, array in arrays.items():
            f.seek(start + layout[name][1])
            np.ascontiguousarray(array).tofile(f)
        f.truncate(start + offset)


def map_image(path: str) -> tuple[Arrays, dict[str, Any]]:
    """The arrays of an image file, read-only views of one shared mapping (no copy)."""
    with open(path, "rb") as f:
        # Not MAP_POPULATE: mmap() holds the GIL, populating 100 MB takes ~0.1 s.
        mapped = mmap.mmap(f.fileno(), 0, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
    size = len(mapped)
    # Fault every page in now, in the loader thread: a numpy reduction runs without the
    # GIL, and the first requests on the new version then take no page faults.
    np.bitwise_or.reduce(np.frombuffer(mapped, dtype=np.uint8)[:: mmap.PAGESIZE])
    if mapped[: len(MAGIC)] != MAGIC:
        raise ImageBuildError(f"{path} is not a model image")
    n = int.from_bytes(mapped[len(MAGIC) : len(MAGIC) + 8], "little")
    header = json.loads(mapped[len(MAGIC) + 8 : len(MAGIC) + 8 + n])
    start = -(-(len(MAGIC) + 8 + n) // ALIGN) * ALIGN
    arrays: Arrays = {}
    for name, (dtype, offset, count) in header["arrays"].items():
        dt = np.dtype(dtype)
        if start + offset + count * dt.itemsize > size:
            raise ImageBuildError(f"{path} is truncated (array {name})")
        arrays[name] = np.frombuffer(mapped, dtype=dt, count=count, offset=start + offset)
    return arrays, header["metadata"]


def load_image(models_root: str, tenant: str, version: str) -> tuple[Arrays, dict[str, Any]]:
    """Build a version's image in a child process and map it; see the module docstring."""
    folder = tempfile.mkdtemp(prefix=TEMP_PREFIX)
    path = os.path.join(folder, IMAGE_NAME)
    try:
        try:
            done = subprocess.run(  # noqa: S603 - our own module, no shell
                child_command(models_root, tenant, version, path),
                capture_output=True, timeout=BUILD_TIMEOUT_SECONDS, env=_child_env(),
                check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise ImageBuildError(
                f"the loader process took more than {BUILD_TIMEOUT_SECONDS:.0f} s"
            ) from None
        if done.returncode != 0:
            raise ImageBuildError(_reason(done.returncode, done.stderr))
        return map_image(path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # mapped pages stay until unmapped


def child_command(models_root: str, tenant: str, version: str, path: str) -> list[str]:
    """The loader process's command line (this module's ``main``)."""
    return [sys.executable, "-m", "simrec.serving.model_image", models_root, tenant, version, path]


def _child_env() -> dict[str, str]:
    """The server's environment, with this package importable whatever the cwd."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def _reason(returncode: int, stderr: bytes) -> str:
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    if returncode < 0:
        return f"the loader process was killed by signal {-returncode}"
    return lines[-1][:500] if lines else f"the loader process exited with {returncode}"


def main(argv: list[str] | None = None) -> int:
    """The child: ``MODELS_ROOT TENANT VERSION IMAGE_PATH``; one error line on failure."""
    models_root, tenant, version, path = argv if argv is not None else sys.argv[1:]
    with contextlib.suppress(OSError):  # not permitted: run at the server's priority
        os.nice(CHILD_NICENESS)
    try:
        from simrec.storage import snapshots

        snapshot = snapshots.read_snapshot(models_root, tenant, version)
        write_image(path, build_image(snapshot), snapshot.metadata)
    except Exception as exc:  # noqa: BLE001 - reported to the server as one line
        message = " ".join(str(exc).split())
        print(f"{type(exc).__name__}: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
