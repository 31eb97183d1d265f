"""Object storage through fsspec: a folder locally, ``gs://`` (gcsfs) on Google Cloud.

This module is the access to objects of any kind; each kind has one module that reads
and writes it: :mod:`~simrec.storage.exports`, :mod:`~simrec.storage.similarities`,
:mod:`~simrec.storage.models`. Where each object lives is :mod:`simrec.core.layout`.

Writes are whole-object and atomic (GCS objects are; local files are written aside and
renamed), so a reader never sees half an object, and a manifest written last is a safe
signal that everything it describes is complete.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from simrec.extras import require


def filesystem(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem and path of ``uri``.

    Listing caches are off for remote stores: a warm Cloud Function instance must see a
    manifest another process wrote a second ago, never a cached listing.
    """
    options = {} if "://" not in uri or uri.startswith("file://") else {
        "use_listings_cache": False
    }
    fs, path = fsspec.core.url_to_fs(uri, **options)
    return fs, path


def is_local(uri: str) -> bool:
    return isinstance(filesystem(uri)[0], LocalFileSystem)


def write_bytes(uri: str, data: bytes) -> None:
    fs, path = filesystem(uri)
    if isinstance(fs, LocalFileSystem):
        directory = os.path.dirname(path)
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    else:
        fs.pipe_file(path, data)


# --- compare-and-swap of one small object (LATEST) --------------------------------
#: What a conditional write compares: a local file's (inode, mtime, size), a GCS
#: object's generation (0: absent), or None where the store offers neither.
Token = Any


@functools.lru_cache(maxsize=4)
def _gcs_client(emulator: str, project: str) -> Any:
    gcs = require("google.cloud.storage", "gcp")
    if emulator:  # the client reads STORAGE_EMULATOR_HOST itself; no credentials there
        from google.auth.credentials import AnonymousCredentials

        return gcs.Client(project=project or "local", credentials=AnonymousCredentials())
    return gcs.Client()


def _gcs_blob(uri: str) -> Any:
    """The google-cloud-storage blob of a ``gs://`` URI (gcsfs has no generation
    preconditions). Honours ``STORAGE_EMULATOR_HOST`` without credentials."""
    bucket, _, name = uri[len("gs://"):].partition("/")
    client = _gcs_client(
        os.environ.get("STORAGE_EMULATOR_HOST", ""), os.environ.get("GOOGLE_CLOUD_PROJECT", "")
    )
    return client.bucket(bucket).blob(name)


def read_versioned(uri: str) -> tuple[bytes | None, Token]:
    """An object's content (None when absent) and the token a conditional write of it
    compares against."""
    if uri.startswith("gs://"):
        blob = _gcs_blob(uri)
        from google.api_core.exceptions import NotFound

        try:
            data = blob.download_as_bytes()
        except NotFound:
            return None, 0
        return data, blob.generation
    fs, path = filesystem(uri)
    if isinstance(fs, LocalFileSystem):
        try:
            with open(path, "rb") as f:
                st = os.fstat(f.fileno())
                return f.read(), (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            return None, None
    try:
        return fs.cat_file(path), None
    except FileNotFoundError:
        return None, None


def write_if_unchanged(uri: str, data: bytes, token: Token) -> bool:
    """Write ``data`` as one whole object unless it changed since ``read_versioned``
    returned ``token``; False when another writer got there first.

    GCS: one upload with ``ifGenerationMatch``. Local: under an ``flock`` of its folder,
    the file is re-checked, then replaced by rename.
    """
    if uri.startswith("gs://"):
        blob = _gcs_blob(uri)
        from google.api_core.exceptions import PreconditionFailed

        try:
            blob.upload_from_string(data, if_generation_match=token)
        except PreconditionFailed:
            return False
        return True
    fs, path = filesystem(uri)
    if not isinstance(fs, LocalFileSystem):
        write_bytes(uri, data)
        return True
    import fcntl

    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd = os.open(directory, os.O_RDONLY)  # the folder is the lock: no extra file
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            st = os.stat(path)
            now: Token = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            now = None
        if now != token:
            return False
        write_bytes(uri, data)
        return True
    finally:
        os.close(fd)  # releases the lock


def read_bytes(uri: str) -> bytes:
    fs, path = filesystem(uri)
    return fs.cat_file(path)


def exists(uri: str) -> bool:
    fs, path = filesystem(uri)
    return fs.exists(path)


def write_json(uri: str, obj: Any) -> None:
    write_bytes(uri, json.dumps(obj, indent=2, sort_keys=True, default=str).encode())


def read_json(uri: str) -> Any:
    return json.loads(read_bytes(uri))


def remove(uri: str, recursive: bool = False) -> None:
    fs, path = filesystem(uri)
    if fs.exists(path):
        fs.rm(path, recursive=recursive)


def read_parquet_folder(uri: str, columns: list[str] | None = None, schema: Any = None) -> Any:
    """Every Parquet file under ``uri`` as one Arrow table. Files starting with ``_`` or
    ``.`` (Spark's ``_SUCCESS``, a writer's temporary files) are skipped. With ``schema``
    (a pyarrow schema) the files are read as that schema: a column a file lacks is null."""
    import pyarrow.dataset as pads

    fs, path = filesystem(uri)
    files = sorted(
        f
        for f in fs.find(path)
        if f.endswith(".parquet") and not f.rsplit("/", 1)[-1].startswith(("_", "."))
    )
    if not files:
        raise FileNotFoundError(f"no parquet files under {uri}")
    dataset = pads.dataset(files, schema=schema, filesystem=fs, format="parquet")
    return dataset.to_table(columns=columns)
