"""What the explorer reads from a finished build (or from a catalog alone).

A build's folder (docs/pipeline.md, "Output layout") holds everything the
explorer shows, in small files it can read without touching a TFRecord:
``vocabulary.csv``, ``splits.csv``, ``private/test_labels.csv``,
``failures.jsonl``, ``stats/``, ``dataset_info.json``, the catalog copy in
``private/inputs/`` and the thumbnails beside the feature cache
(``pipeline.thumbnails``). Paths go through ``yt8m.fs``, so a build on
``gs://`` is read the same way.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
from typing import Iterator, Optional

from apache_beam.io.filesystems import FileSystems

from yt8m import fs


@dataclasses.dataclass(frozen=True)
class Sources:
    """The files of one build (None where a build has no such file)."""
    data_dir: Optional[str]
    vocabulary: Optional[str] = None
    splits: Optional[str] = None
    test_labels: Optional[str] = None
    failures: Optional[str] = None
    catalog: Optional[str] = None
    selection: Optional[str] = None
    stats_dir: Optional[str] = None
    cache_dir: Optional[str] = None
    predictions: Optional[str] = None

    @classmethod
    def locate(cls, data_dir: Optional[str], catalog: Optional[str] = None,
               predictions: Optional[str] = None) -> "Sources":
        """The files of the build in ``data_dir``; ``catalog`` overrides its catalog copy.

        A clear error when ``data_dir`` is not a build (no vocabulary.csv / splits.csv)
        or when neither a build nor a catalog is given.
        """
        if not data_dir:
            if not catalog:
                raise ValueError("give --data_dir OUT (a build) or --entities CATALOG (to rate "
                                 "a catalog's entities without a build)")
            _must_exist(catalog, "--entities")
            return cls(data_dir=None, catalog=catalog,
                       predictions=_must_exist(predictions, "--predictions"))
        data_dir = data_dir.rstrip("/") or "/"
        vocabulary = fs.join(data_dir, "vocabulary.csv")
        splits = fs.join(data_dir, "splits.csv")
        missing = [p for p in (vocabulary, splits) if not fs.exists(p)]
        if missing:
            raise FileNotFoundError(
                f"{data_dir} is not a build: {', '.join(fs.basename(p) for p in missing)} "
                f"missing; pass the --output_dir of 'build' or 'vocab' (OUT)")

        def opt(*parts):
            path = fs.join(data_dir, *parts)
            return path if fs.exists(path) else None

        if catalog:
            _must_exist(catalog, "--entities")
        return cls(data_dir=data_dir, vocabulary=vocabulary, splits=splits,
                   test_labels=opt("private", "test_labels.csv"), failures=opt("failures.jsonl"),
                   catalog=catalog or opt("private", "inputs", "entities.csv"),
                   selection=opt("stats", "selection.json"), stats_dir=opt("stats"),
                   cache_dir=cache_dir_of(data_dir),
                   predictions=_must_exist(predictions, "--predictions"))

    def files(self) -> dict[str, Optional[str]]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name not in ("data_dir", "stats_dir", "cache_dir")}


def _must_exist(path: Optional[str], flag: str) -> Optional[str]:
    if path and not fs.exists(path):
        raise FileNotFoundError(f"{flag} {path!r} does not exist")
    return path


def cache_dir_of(data_dir: str) -> str:
    """The feature cache a build reads (a resplit reads its source's): thumbnails live there."""
    info = fs.join(data_dir, "dataset_info.json")
    if fs.exists(info):
        try:
            cache_dir = json.loads(fs.read_text(info)).get("cache_dir")
        except ValueError:
            cache_dir = None
        # A build moved since it was made: its own cache/ still holds its files.
        if cache_dir and fs.exists(cache_dir):
            return cache_dir
    return fs.join(data_dir, "cache")


def stamp(path: Optional[str]) -> Optional[list]:
    """``[size, mtime]`` of a file (what says it changed), None when there is none."""
    if not path:
        return None
    found = fs.match(path)
    if not found:
        return None
    meta = found[0]
    return [int(meta.size_in_bytes), round(float(getattr(meta, "last_updated_in_seconds", 0.0)
                                               or 0.0), 6)]


def open_text(path: str) -> io.TextIOBase:
    """A streaming text reader (no whole-file read: splits.csv of 8 M rows is large)."""
    raw = FileSystems.open(path, compression_type=fs.RAW)
    return io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")


def read_csv(path: str) -> Iterator[dict]:
    with open_text(path) as fh:
        yield from csv.DictReader(fh)


def labels_of(field: str) -> list[int]:
    """``"3;17"`` -> [3, 17] (the ``labels`` columns of splits.csv and test_labels.csv)."""
    return [int(x) for x in (field or "").split(";") if x.strip()]


def failed_ids(path: Optional[str]) -> set:
    """Video ids in failures.jsonl: selected, in splits.csv, but not in the dataset."""
    out = set()
    if not path:
        return out
    with open_text(path) as fh:
        for line in fh:
            if line.strip():
                try:
                    vid = json.loads(line).get("video_id")
                except ValueError:
                    continue
                if vid:
                    out.add(vid)
    return out


def read_predictions(path: str, top_k: int = 5) -> dict[str, list]:
    """Top predictions per video from a predictions CSV, as ``{video_id: [key, ...]}``.

    Two layouts: ``predict``'s (``video_id,rank,index,knowledge_graph_id,name,score``:
    keys are kg_ids, or vocabulary indices where the kg_id column is empty) and the
    challenge format that ``train`` writes (``VideoId,LabelConfidencePairs``: keys
    are vocabulary indices, as ints).
    """
    out: dict[str, list] = {}
    with open_text(path) as fh:
        reader = csv.DictReader(fh)
        cols = set(reader.fieldnames or ())
        if {"VideoId", "LabelConfidencePairs"} <= cols:
            for row in reader:
                parts = row["LabelConfidencePairs"].split()
                out[row["VideoId"]] = [int(i) for i in parts[0::2][:top_k]]
            return out
        if not {"video_id", "rank"} <= cols or not ({"knowledge_graph_id", "index"} & cols):
            raise ValueError(f"{path}: not a predictions file (expected predict's header "
                             f"video_id,rank,index,knowledge_graph_id,name,score or "
                             f"VideoId,LabelConfidencePairs; got {sorted(cols)})")
        ranked: dict[str, list] = {}
        for row in reader:
            key = row.get("knowledge_graph_id") or None
            if key is None and row.get("index", "") != "":
                key = int(row["index"])
            if key is not None:
                ranked.setdefault(row["video_id"], []).append((int(row["rank"]), key))
        for vid, items in ranked.items():
            out[vid] = [k for _, k in sorted(items)[:top_k]]
    return out
