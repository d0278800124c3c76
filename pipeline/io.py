"""The jobs' Beam writers and the publishing of a staged output, on ``yt8m.fs``.

Nothing appears in OUT half-written. During a run a job (``build``,
``resplit``, ``extract``, ``vocab``) writes only into its staging folder
``OUT/.tmp/<job>/`` (``staging_dir``):

* TFRecords through ``WriteRecords`` (``beam.io.WriteToTFRecord``, whose own
  temporary files live below the staging folder too);
* per-video text files through ``beam.io.WriteToText`` or, when their lines
  must be sorted (failures.jsonl), ``WriteSortedLines``;
* small files through ``yt8m.fs.atomic_write``.

After the pipeline has succeeded, the launcher (``pipeline.launch``) publishes:
``publish`` removes the previous run's shards and renames the staged shards
and small files into place, ``publish_tree`` moves a staged folder's files
(the selection's vocabulary files), and the job's marker
(``dataset_info.json``, ``model.json``) is written last. A kill at any point
leaves OUT either as it was or with whole files of the new run and no marker;
the rerun publishes again from scratch.
"""
from __future__ import annotations

import hashlib
import heapq
import io
import json
from typing import Iterable, Optional, Sequence

import apache_beam as beam

from yt8m import fs

SPLITS = ("train", "validate", "test")
RECORD_KINDS = ("frame", "video")
RAW_KIND = "features"          # extract --no_compress: raw float features
SHARD_TEMPLATE = "-SSSSS-of-NNNNN"
TFRECORD_SUFFIX = ".tfrecord"
TMP_DIRNAME = ".tmp"
DATASET_INFO = "dataset_info.json"   # a build's marker: OUT is complete exactly when present
SORT_BUCKETS = 16
SORT_LINES_PER_BUCKET = 50_000   # a sort bucket's target size: the buckets grow with the lines


# ---------------------------------------------------------------------------
# Where runs stage their outputs
# ---------------------------------------------------------------------------
def tmp_root(out: str) -> str:
    """OUT/.tmp: the work area of runs in OUT (never part of the dataset)."""
    return fs.join(out, TMP_DIRNAME)


def staging_dir(out: str, job: str) -> str:
    """OUT/.tmp/<job>: everything ``job`` writes before it publishes."""
    return fs.join(tmp_root(out), job)


def record_tag(kind: str, split: Optional[str] = None) -> str:
    """The name of one record stream: ``frame_train`` in a build, ``frame`` outside one."""
    return f"{kind}_{split}" if split else kind


def dataset_prefixes(splits: Sequence[str] = SPLITS,
                     kinds: Sequence[str] = RECORD_KINDS) -> dict:
    """A build's shard prefixes by record tag: ``{"frame_train": "frame/train", ...}``."""
    return {record_tag(k, s): f"{k}/{s}" for k in kinds for s in splits}


def shard_pattern(folder: str, prefix: str) -> str:
    """The glob of the shards of ``prefix`` (e.g. ``frame/train``) below ``folder``."""
    return fs.join(folder, f"{prefix}-*-of-*{TFRECORD_SUFFIX}")


# ---------------------------------------------------------------------------
# Beam writers
# ---------------------------------------------------------------------------
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


def _bucket_of(key, buckets: int) -> int:
    blob = json.dumps(key).encode("ascii")
    return int.from_bytes(hashlib.sha256(blob).digest()[:4], "big") % buckets


def sort_bucket_count(n_lines: int, min_buckets: int = SORT_BUCKETS,
                      lines_per_bucket: int = SORT_LINES_PER_BUCKET) -> int:
    """How many sort buckets ``n_lines`` lines get: at least ``min_buckets``, and
    enough that one holds about ``lines_per_bucket`` lines. Any count gives the
    same file (the runs are merged in key order), so sizing it from the data
    costs no determinism."""
    return max(int(min_buckets), -(-int(n_lines) // int(lines_per_bucket)))


def _write_run(kv, tmp_dir: str, name: str) -> str:
    """One bucket's lines, sorted, as a run file (``[key, line]`` JSON per line)."""
    bucket, items = kv
    # ASCII JSON: any string survives the round trip, lone surrogates included.
    text = "".join(json.dumps([key, line]) + "\n"
                   for key, line in sorted((tuple(k) if isinstance(k, list) else k, ln)
                                           for k, ln in items))
    return fs.atomic_write(fs.join(tmp_dir, f"{name}.run-{bucket:05d}"), text, tmp_dir)


def _run_lines(path: str) -> Iterable[tuple]:
    with fs.FileSystems.open(path, compression_type=fs.RAW) as raw:
        for row in io.TextIOWrapper(raw, encoding="utf-8", newline="\n"):
            key, line = json.loads(row)
            yield (tuple(key) if isinstance(key, list) else key), line


def _merge_runs(runs: list, path: str, tmp_dir: str) -> str:
    """Merge the sorted runs into ``path``, a line at a time per run (heapq.merge)."""
    with fs.open_atomic(path, tmp_dir) as out:
        for _, line in heapq.merge(*(_run_lines(r) for r in sorted(runs))):
            # Strings read from undecodable manifest bytes keep them as escapes.
            out.write((line + "\n").encode("utf-8", "backslashreplace"))
    return path


class WriteSortedLines(beam.PTransform):
    """``(key, line)`` pairs -> one text file, lines sorted by ``(key, line)``.

    A file whose bytes must not depend on bundle order (failures.jsonl: two
    builds of the same inputs give the same file) is sorted, but no worker
    holds all its lines: they are spread over ``buckets`` by a hash of the key,
    each bucket is sorted in one worker and written as a run file under
    ``tmp_dir``, and a last step merges the sorted runs into ``path`` reading
    them a line at a time (``heapq.merge``), through ``yt8m.fs.open_atomic``.
    Memory: one bucket per worker, about ``lines_per_bucket`` lines however
    many lines there are (the bucket count is sized from a count of the lines,
    at least ``buckets``: ``sort_bucket_count``), and one line per run in the
    merge. ``key`` is a string or a tuple of strings
    (it round-trips through JSON); ``line`` has no newline. An empty input
    still writes the (empty) file: "no failures" is not "not built".
    """

    def __init__(self, path: str, tmp_dir: str, buckets: int = SORT_BUCKETS,
                 lines_per_bucket: int = SORT_LINES_PER_BUCKET):
        super().__init__()
        if not path or not tmp_dir:
            raise ValueError("WriteSortedLines needs a destination path and a temp folder")
        for name, value in (("buckets", buckets), ("lines_per_bucket", lines_per_bucket)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"WriteSortedLines: {name} must be a positive integer, "
                                 f"got {value!r}")
        self.path, self.tmp_dir, self.buckets = path, tmp_dir, buckets
        self.lines_per_bucket = lines_per_bucket

    def expand(self, pairs):
        path, tmp_dir, buckets = self.path, self.tmp_dir, self.buckets
        per_bucket = self.lines_per_bucket
        name = fs.basename(path)
        n_lines = pairs | "CountLines" >> beam.combiners.Count.Globally()
        return (pairs
                | "ToBucket" >> beam.Map(
                    lambda kv, n: (_bucket_of(kv[0], sort_bucket_count(n, buckets, per_bucket)),
                                   kv),
                    beam.pvalue.AsSingleton(n_lines))
                | "GroupBucket" >> beam.GroupByKey()
                | "WriteSortedRun" >> beam.Map(_write_run, tmp_dir, name)
                # The runs' paths only: one string per bucket (lines / lines_per_bucket).
                | "GatherRuns" >> beam.combiners.ToList()
                | "MergeRuns" >> beam.Map(_merge_runs, path, tmp_dir))


# ---------------------------------------------------------------------------
# Publishing the staged outputs
# ---------------------------------------------------------------------------
def publish(staging: str, out: str, small_files: Sequence[str] = (),
            prefixes: Optional[Sequence[str]] = None) -> dict:
    """Move the staged shards and small files into OUT; returns ``{prefix: {files, bytes}}``.

    ``prefixes``: the shard groups relative to both folders (default: a
    build's ``frame/train`` ... ``video/test``; ``extract`` publishes
    ``frame`` and ``video``, or ``features``). The previous run's shards of
    every group are deleted first, so that a run with fewer shards leaves no
    stale ones behind.
    """
    prefixes = list(dataset_prefixes().values() if prefixes is None else prefixes)
    old = [m.path for prefix in prefixes for m in fs.match(shard_pattern(out, prefix))]
    if old:
        fs.FileSystems.delete(old)
    sizes: dict = {}
    for prefix in prefixes:
        shards = fs.match(shard_pattern(staging, prefix))
        folder = fs.parent(fs.join(out, prefix))
        fs.move([m.path for m in shards], [fs.join(folder, fs.basename(m.path))
                                             for m in shards])
        sizes[prefix] = {"files": len(shards),
                         "bytes": int(sum(m.size_in_bytes for m in shards))}
    publish_files(staging, out, small_files)
    return sizes


def publish_files(staging: str, out: str, files: Sequence[str]) -> None:
    """Move staged small files (paths relative to ``staging``) into OUT by rename."""
    missing = [rel for rel in files if not fs.exists(fs.join(staging, rel))]
    if missing:
        raise FileNotFoundError(f"the run did not stage {missing[0]!r} in {staging}: "
                                f"the pipeline ended without writing it")
    fs.move([fs.join(staging, rel) for rel in files], [fs.join(out, rel) for rel in files])


def publish_tree(staged: str, out: str) -> list[str]:
    """Move every file below the folder ``staged`` to the same place below ``out``."""
    base = fs.join(staged, "")
    srcs = [m.path for m in fs.match(fs.join(staged, "**"))]
    rels = [src[len(base):] if src.startswith(base) else fs.basename(src) for src in srcs]
    dsts = [fs.join(out, *rel.split("/")) for rel in rels]
    fs.move(srcs, dsts)
    return dsts
