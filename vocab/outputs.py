"""Output file names and CSV row formatting of the selection's files.

The files themselves are written by ``vocab.write`` (per-video files with
``beam.io.WriteToText``, small ones with ``yt8m.fs.atomic_write``) into a
staging folder that the launcher publishes.
"""
from __future__ import annotations

import csv
import io
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
