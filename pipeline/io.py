"""The build's outputs: TFRecord writers, small files, atomic publishing.

Every path goes through Beam's ``FileSystems``, so OUT may be a local folder or
a ``gs://`` URI. Nothing appears in OUT half-written:

* during the run, the pipeline writes into the staging folder
  ``OUT/.tmp/<job>/`` only: TFRecords through ``beam.io.WriteToTFRecord``
  (whose own temp files live below that folder), small JSON/CSV files through
  ``WriteSingleFile`` (a temp name, then ``FileSystems.rename``);
* after the pipeline succeeded, ``publish`` removes the previous build's shards
  and renames the staged files into place, and ``dataset_info.json`` is written
  last: its presence marks a complete dataset.

A kill at any point leaves OUT either as it was or with whole files of the new
build and no ``dataset_info.json``; the rerun publishes again from scratch.
"""
from __future__ import annotations

import csv
import io
import json
import uuid
from typing import Callable, Iterable, Optional, Sequence

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

SPLITS = ("train", "validate", "test")
RECORD_KINDS = ("frame", "video")
SHARD_TEMPLATE = "-SSSSS-of-NNNNN"
TFRECORD_SUFFIX = ".tfrecord"
TMP_DIRNAME = ".tmp"


# ---------------------------------------------------------------------------
# Paths
# ---------------------------------------------------------------------------
def join(base: str, *parts: str) -> str:
    return FileSystems.join(base, *parts)


def tmp_root(out: str) -> str:
    """OUT/.tmp: the work area of runs in OUT (never part of the dataset)."""
    return join(out, TMP_DIRNAME)


def mkdirs(path: str) -> None:
    if not FileSystems.exists(path):
        try:
            FileSystems.mkdirs(path)
        except Exception:  # noqa: BLE001 - made concurrently, or GCS (no folders)
            pass


def delete_tree(path: str) -> None:
    """Remove ``path`` (a file or a folder, local or remote) if it exists."""
    if FileSystems.exists(path):
        FileSystems.delete([path])


def match(pattern: str) -> list:
    """FileMetadata for ``pattern`` (sorted by path); empty if nothing matches."""
    try:
        result = FileSystems.match([pattern])[0]
    except Exception:  # noqa: BLE001 - Beam raises when a local pattern has no match
        return []
    return sorted(result.metadata_list, key=lambda m: m.path)


# ---------------------------------------------------------------------------
# Atomic small files (launcher side and inside DoFns)
# ---------------------------------------------------------------------------
def atomic_write(path: str, data: bytes | str, tmp_dir: Optional[str] = None) -> None:
    """Write ``path`` through a temp file beside it (or in ``tmp_dir``) and a rename."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    parent = path.rsplit("/", 1)[0] if "/" in path else "."
    tmp_dir = tmp_dir or parent
    mkdirs(tmp_dir)
    mkdirs(parent)
    tmp = join(tmp_dir, f".{uuid.uuid4().hex}.part")
    with FileSystems.create(tmp) as fh:
        fh.write(data)
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([tmp], [path])


def json_text(obj) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n"


def _json_default(o):
    import numpy as np
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def csv_text(header: Sequence[str], rows: Iterable[Sequence]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def read_bytes(path: str) -> bytes:
    with FileSystems.open(path) as fh:
        return fh.read()


def read_text(path: str) -> str:
    return read_bytes(path).decode("utf-8")


def copy_file(src: str, dst: str) -> None:
    """Copy through FileSystems, atomically at the destination."""
    atomic_write(dst, read_bytes(src))


# ---------------------------------------------------------------------------
# Beam writers
# ---------------------------------------------------------------------------
class WriteSingleFile(beam.PTransform):
    """Gather a (small) PCollection and write it as one file, atomically.

    ``render(list_of_elements) -> str|bytes`` makes the file's content; the
    elements are sorted first (``sort_key``) so the bytes do not depend on
    bundle order. An empty PCollection still writes the file (e.g. an empty
    failures.jsonl says "no failures", which is not the same as "not built").
    """

    def __init__(self, path: str, render: Callable[[list], bytes | str],
                 sort_key: Optional[Callable] = None):
        super().__init__()
        if not path:
            raise ValueError("WriteSingleFile needs a destination path")
        if not callable(render):
            raise TypeError(f"render must be callable, got {render!r}")
        self.path = path
        self.render = render
        self.sort_key = sort_key

    def expand(self, pcoll):
        path, render, key = self.path, self.render, self.sort_key

        def _write(elements):
            items = sorted(elements, key=key) if key else list(elements)
            atomic_write(path, render(items))
            return path

        return (pcoll
                | "Gather" >> beam.combiners.ToList()
                | "WriteAtomically" >> beam.Map(_write))


def jsonl_render(items: list) -> str:
    return "".join(json.dumps(x, sort_keys=True, default=_json_default) + "\n" for x in items)


class WriteRecords(beam.PTransform):
    """Serialized records -> ``PREFIX-SSSSS-of-NNNNN.tfrecord`` via WriteToTFRecord."""

    def __init__(self, file_path_prefix: str, num_shards: int = 0):
        super().__init__()
        if not file_path_prefix:
            raise ValueError("WriteRecords needs a file path prefix (e.g. OUT/frame/train)")
        if num_shards < 0:
            raise ValueError(f"num_shards must be >= 0 (0 lets the runner decide), "
                             f"got {num_shards}")
        self.prefix = file_path_prefix
        self.num_shards = num_shards

    def expand(self, records):
        return records | "WriteToTFRecord" >> beam.io.WriteToTFRecord(
            self.prefix, file_name_suffix=TFRECORD_SUFFIX, num_shards=self.num_shards,
            shard_name_template=SHARD_TEMPLATE)


# ---------------------------------------------------------------------------
# Publishing the staged outputs
# ---------------------------------------------------------------------------
def staged_shards(staging: str, kind: str, split: str) -> list:
    return match(join(staging, kind, f"{split}-*-of-*{TFRECORD_SUFFIX}"))


def publish(staging: str, out: str, small_files: Sequence[str]) -> dict:
    """Move the staged TFRecords and small files into OUT; returns bytes per (kind, split).

    The previous build's shards of every split are deleted first, so that a
    build with fewer shards leaves no stale ones behind.
    """
    sizes: dict = {}
    for kind in RECORD_KINDS:
        mkdirs(join(out, kind))
        old = [m.path for split in SPLITS
               for m in match(join(out, kind, f"{split}-*-of-*{TFRECORD_SUFFIX}"))]
        if old:
            FileSystems.delete(old)
        for split in SPLITS:
            shards = staged_shards(staging, kind, split)
            srcs = [m.path for m in shards]
            dsts = [join(out, kind, m.path.rsplit("/", 1)[-1]) for m in shards]
            if srcs:
                FileSystems.rename(srcs, dsts)
            sizes[(kind, split)] = {"files": len(srcs),
                                    "bytes": int(sum(m.size_in_bytes for m in shards))}
    publish_files(staging, out, small_files)
    return sizes


def publish_files(staging: str, out: str, files: Sequence[str]) -> None:
    """Move staged small files (paths relative to ``staging``) into OUT by rename.

    Used alone when there is no dataset to publish (only failures.jsonl).
    """
    for rel in files:
        src = join(staging, rel)
        if not FileSystems.exists(src):
            raise FileNotFoundError(f"the build did not stage {rel!r} in {staging}: "
                                    f"the pipeline ended without writing it")
        dst = join(out, rel)
        mkdirs(dst.rsplit("/", 1)[0])
        if FileSystems.exists(dst):
            FileSystems.delete([dst])
        FileSystems.rename([src], [dst])
