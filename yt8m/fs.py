"""The one filesystem helper: every file the project writes goes through here.

All paths go through Beam's ``FileSystems``, so a local folder, ``gs://``,
``s3://`` or any registered scheme work alike, on the launcher and inside
DoFns. The write rule is the same for every writer (vocab files, cache
entries, artifacts, dataset_info.json, the trainer's run folder):

* ``atomic_write(path, data)`` writes ``data`` to a unique temporary name
  (beside ``path``, or in ``tmp_dir``) and renames it onto ``path``. A reader
  sees the old file or the new one, never a part. The rename replaces an
  existing file in one step (POSIX ``rename``; object stores copy over the
  old object), so nothing deletes the old file first: a crash between a
  delete and a rename would leave no file at all. Only where a filesystem
  refuses to rename onto an existing file is the old one deleted and the
  rename retried.
* ``open_atomic(path)`` is the same for a writer that streams (a file too
  large to hold in memory): a handle on the temporary file, renamed onto
  ``path`` when the block ends without an exception.
* ``stage_local(path)`` gives a writer that needs a local file name (Keras'
  ``model.save``, TensorBoard's event writer) a local temporary folder whose
  files are uploaded with ``atomic_write`` when the block ends without error.

Moving: ``replace(src, dst)`` (one rename that replaces ``dst``) and
``move(srcs, dsts)`` (several, in order: publishing a staged dataset).

Reading: ``read_bytes``, ``read_text``, ``read_json``, ``exists``, ``match``.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from typing import Iterator, Optional

import numpy as np
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

RAW = CompressionTypes.UNCOMPRESSED
TMP_SUFFIX = ".part"


def is_remote(path: str) -> bool:
    """True for ``scheme://...`` paths other than ``file://``."""
    return "://" in path and not path.startswith("file://")


def join(base: str, *parts: str) -> str:
    return FileSystems.join(base, *parts)


def parent(path: str) -> str:
    """The folder holding ``path`` (``.`` for a bare local name)."""
    if is_remote(path):
        return path.rstrip("/").rsplit("/", 1)[0]
    return os.path.dirname(path) or "."


def basename(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def exists(path: str) -> bool:
    return FileSystems.exists(path)


def mkdirs(path: str) -> None:
    """Make ``path`` and its parents; no error when it exists (or the store has no folders)."""
    if FileSystems.exists(path):
        return
    try:
        FileSystems.mkdirs(path)
    except Exception:  # noqa: BLE001 - made concurrently by another worker, or GCS/S3,
        pass           # which have no folders; the next create() reports a real problem.


def delete(path: str) -> None:
    """Remove ``path`` (a file or a whole folder) if it exists."""
    if FileSystems.exists(path):
        FileSystems.delete([path])


def match(pattern: str) -> list:
    """``FileMetadata`` of the files matching ``pattern``, sorted by path; [] for none."""
    try:
        result = FileSystems.match([pattern])[0]
    except Exception:  # noqa: BLE001 - Beam raises when a local pattern matches nothing
        return []
    return sorted(result.metadata_list, key=lambda m: m.path)


def read_bytes(path: str) -> bytes:
    if not FileSystems.exists(path):
        raise FileNotFoundError(f"{path}: no such file; check the path (local or gs://)")
    with FileSystems.open(path, compression_type=RAW) as fh:
        return fh.read()


def read_text(path: str) -> str:
    return read_bytes(path).decode("utf-8")


def read_json(path: str):
    return json.loads(read_text(path))


def atomic_write(path: str, data: bytes | str, tmp_dir: Optional[str] = None) -> str:
    """Write ``data`` (str is UTF-8 encoded) to ``path`` through a temp file and a rename.

    ``tmp_dir``: where the temporary file goes (default: beside ``path``; a
    build passes its ``OUT/.tmp`` so that a kill leaves no ``.part`` file in
    the dataset's folders). Returns ``path``.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open_atomic(path, tmp_dir) as fh:
        fh.write(data)
    return path


def _tmp_name(path: str, tmp_dir: Optional[str]) -> str:
    folder = parent(path)
    mkdirs(folder)
    if tmp_dir:
        mkdirs(tmp_dir)
    return join(tmp_dir or folder, f".{basename(path)}.{uuid.uuid4().hex[:12]}{TMP_SUFFIX}")


@contextlib.contextmanager
def open_atomic(path: str, tmp_dir: Optional[str] = None) -> Iterator:
    """A binary handle whose content appears at ``path`` (renamed) when the block succeeds.

    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    tmp = _tmp_name(path, tmp_dir)
    try:
        with FileSystems.create(tmp, compression_type=RAW) as fh:
            yield fh
    except BaseException:
        try:
            delete(tmp)
        except Exception:  # noqa: BLE001 - the original error is the one to report
            pass
        raise
    replace(tmp, path)


def replace(src: str, dst: str) -> None:
    """Rename ``src`` onto ``dst``, replacing ``dst`` if it exists (see the module docstring)."""
    try:
        FileSystems.rename([src], [dst])
    except Exception:  # noqa: BLE001 - BeamIOError wraps the filesystem's own error
        if not FileSystems.exists(dst):
            raise
        # A filesystem that will not rename onto an existing file.
        FileSystems.delete([dst])
        FileSystems.rename([src], [dst])


def json_text(obj) -> str:
    """Stable, readable JSON (sorted keys; NumPy values as plain numbers)."""
    return json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n"


def write_json(path: str, obj, tmp_dir: Optional[str] = None) -> str:
    return atomic_write(path, json_text(obj), tmp_dir)


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if hasattr(o, "to_dict"):
        return o.to_dict()
    return str(o)


def move(srcs: list, dsts: list) -> None:
    """``replace`` each ``srcs[i]`` onto ``dsts[i]``, in order (making the folders needed)."""
    if len(srcs) != len(dsts):
        raise ValueError(f"move needs as many destinations as sources, got {len(srcs)} "
                         f"sources and {len(dsts)} destinations")
    for src, dst in zip(srcs, dsts):
        mkdirs(parent(dst))
        replace(src, dst)


COPY_CHUNK = 8 << 20


def copy_file(src: str, dst: str, tmp_dir: Optional[str] = None) -> str:
    """Copy ``src`` to ``dst`` (any schemes), atomically at the destination.

    Streamed in chunks: a manifest of millions of rows is never held in memory.
    """
    if not FileSystems.exists(src):
        raise FileNotFoundError(f"{src}: no such file; check the path (local or gs://)")
    with FileSystems.open(src, compression_type=RAW) as fin, open_atomic(dst, tmp_dir) as fout:
        shutil.copyfileobj(fin, fout, COPY_CHUNK)
    return dst


def upload_tree(local_dir: str, dst_dir: str) -> list[str]:
    """Copy every file below the local folder ``local_dir`` to ``dst_dir``, each atomically."""
    written = []
    for folder, _, files in os.walk(local_dir):
        rel = os.path.relpath(folder, local_dir)
        for name in sorted(files):
            with open(os.path.join(folder, name), "rb") as fh:
                data = fh.read()
            target = join(dst_dir, *([] if rel == "." else rel.split(os.sep)), name)
            written.append(atomic_write(target, data))
    return written


@contextlib.contextmanager
def stage_local(path: str) -> Iterator[str]:
    """A local folder standing for ``path`` (a folder), for writers that need local files.

    Local ``path``: the folder itself is yielded (files written there land in
    place; writers should still write each file atomically). Remote ``path``:
    a temporary local folder, uploaded file by file with ``atomic_write`` when
    the block ends without an exception, and removed either way.
    """
    if not is_remote(path):
        local = path[len("file://"):] if path.startswith("file://") else path
        os.makedirs(local, exist_ok=True)
        yield local
        return
    tmp = tempfile.mkdtemp(prefix="yt8m-stage-")
    try:
        yield tmp
        upload_tree(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
