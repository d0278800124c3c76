"""Output file names, CSV row formatting and atomic small-file writes.

Large per-video files (splits, excluded rows, test labels) are written with
``beam.io.WriteToText``, which stages shards in a temporary folder and renames
them at the end. Small files (vocabulary, excluded entities, statistics) are
written by ``write_atomic``: a temporary name next to the target, then
``FileSystems.rename``, so that a reader never sees half a file.
"""
from __future__ import annotations

import csv
import io
import os
import uuid
from typing import Iterable, Sequence

VOCABULARY_COLUMNS = ("Index", "TrainVideoCount", "KnowledgeGraphId", "Name", "WikiUrl",
                      "Vertical1", "Vertical2", "Vertical3", "WikiDescription", "Specificity")
SPLITS_COLUMNS = ("video_id", "split", "labels")
EXCLUDED_COLUMNS = ("video_id", "reason", "line", "detail")
EXCLUDED_ENTITIES_COLUMNS = ("kg_id", "reason", "detail")
TEST_LABELS_COLUMNS = ("video_id", "labels")

VOCABULARY_CSV = "vocabulary.csv"
SPLITS_CSV = "splits.csv"
EXCLUDED_CSV = "excluded.csv"
EXCLUDED_ENTITIES_CSV = "excluded_entities.csv"
PRIVATE_DIR = "private"            # the only folder with test labels
TEST_LABELS_CSV = "test_labels.csv"
STATS_DIR = "stats"
SELECTION_JSON = "selection.json"
STATISTICS_JSON = "statistics.json"


def join(*parts: str) -> str:
    from apache_beam.io.filesystems import FileSystems
    return FileSystems.join(*parts)


def is_local(path: str) -> bool:
    return "://" not in path


def ensure_dir(path: str) -> None:
    """Create a local folder (object stores have no folders to create)."""
    if is_local(path):
        os.makedirs(path, exist_ok=True)


def csv_line(values: Sequence) -> str:
    """One CSV record without its line terminator (quotes commas, quotes, newlines)."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(["" if v is None else v for v in values])
    return buf.getvalue()


def csv_text(header: Sequence[str], rows: Iterable[Sequence]) -> str:
    lines = [csv_line(header)]
    lines.extend(csv_line(r) for r in rows)
    return "\n".join(lines) + "\n"


def labels_field(labels: Iterable[int]) -> str:
    return ";".join(str(i) for i in labels)


def write_atomic(path: str, data: bytes | str) -> str:
    """Write ``data`` to ``path`` through a temporary name and a rename; returns path."""
    from apache_beam.io.filesystems import FileSystems
    if isinstance(data, str):
        data = data.encode("utf-8")
    parent, name = FileSystems.split(path)
    ensure_dir(parent)
    tmp = FileSystems.join(parent, f".{name}.tmp-{uuid.uuid4().hex}")
    with FileSystems.create(tmp) as fh:
        fh.write(data)
    FileSystems.rename([tmp], [path])
    return path
