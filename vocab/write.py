"""``WriteVocabOutputs``: the files of a selection, each appearing atomically.

DIR/vocabulary.csv, DIR/splits.csv, DIR/excluded.csv, DIR/excluded_entities.csv,
DIR/private/test_labels.csv and DIR/stats/ (selection.json, statistics.json,
PNG plots), where DIR is the job's staging folder: the launcher moves them into
OUT once the whole pipeline has succeeded. Per-video files go through
``WriteToText`` (one shard, staged in a temporary folder and renamed); the
small ones through ``yt8m.fs.atomic_write``. Test labels are written to
``private/`` only: splits.csv leaves them empty.
"""
from __future__ import annotations

import apache_beam as beam

from yt8m import fs
from yt8m.records import ExcludedRow, Video
from yt8m.vocab import outputs as o
from yt8m.vocab import stats
from yt8m.vocab.config import SPLIT_NAMES

_TEST = SPLIT_NAMES[2]
_LINES_PER_BLOCK = 2000


def _splits_line(s: Video) -> str:
    labels = "" if s.split == _TEST else o.labels_field(s.labels)
    return o.csv_line((s.video_id, s.split, labels))


def _excluded_line(e: ExcludedRow) -> str:
    return o.csv_line((e.video_id or "", e.reason, e.line, e.detail))


def _test_labels_line(s: Video) -> str:
    return o.csv_line((s.video_id, o.labels_field(s.labels)))


def _write_vocabulary(rows: list, path: str) -> str:
    # The vocabulary is small (one row per kept entity): gathered, sorted, written once.
    rows = sorted(rows, key=lambda r: r["Index"])
    return fs.atomic_write(path, o.csv_text(o.VOCABULARY_COLUMNS,
                                            ([r[c] for c in o.VOCABULARY_COLUMNS] for r in rows)))


def _write_excluded_entities(rows: list, path: str) -> str:
    # At most one row per catalog entity.
    rows = sorted(rows, key=lambda r: r["kg_id"])
    return fs.atomic_write(path, o.csv_text(o.EXCLUDED_ENTITIES_COLUMNS,
                                            ([r[c] for c in o.EXCLUDED_ENTITIES_COLUMNS]
                                             for r in rows)))


def _write_statistics(statistics: dict, stats_dir: str) -> list[str]:
    written = [fs.atomic_write(fs.join(stats_dir, o.STATISTICS_JSON), stats.to_json(statistics))]
    for name, png in stats.plot_all(statistics).items():
        written.append(fs.atomic_write(fs.join(stats_dir, name), png))
    return written


class WriteVocabOutputs(beam.PTransform):
    """Writes a ``SelectionResult`` under ``output_dir``."""

    def __init__(self, output_dir: str, label=None):
        super().__init__(label)
        if not isinstance(output_dir, str) or not output_dir:
            raise ValueError(f"WriteVocabOutputs: output_dir must be a folder path, "
                             f"got {output_dir!r}")
        self.output_dir = output_dir

    def _text(self, lines, name: str, path: str, header):
        # Blocks of lines, not single lines: WriteToText's per-element cost (windowing,
        # encoding, the single-shard shuffle) was most of the selection's CPU time.
        return (lines
                | f"Batch{name}" >> beam.BatchElements(min_batch_size=_LINES_PER_BLOCK,
                                                        max_batch_size=_LINES_PER_BLOCK)
                | f"Join{name}" >> beam.Map("\n".join)
                | f"Write{name}" >> beam.io.WriteToText(
                    path, shard_name_template="", num_shards=1, header=o.csv_line(header)))

    def expand(self, result):
        out = self.output_dir
        # WriteToText renames its shard into these folders: they must exist
        # (a no-op on object stores, which have no folders).
        for sub in ("", o.PRIVATE_DIR, o.STATS_DIR):
            fs.mkdirs(fs.join(out, sub) if sub else out)
        stats_dir = fs.join(out, o.STATS_DIR)

        self._text(result.selected | "SplitsLines" >> beam.Map(_splits_line),
                   "Splits", fs.join(out, o.SPLITS_CSV), o.SPLITS_COLUMNS)
        self._text(result.selected
                   | "TestOnly" >> beam.Filter(lambda s: s.split == _TEST)
                   | "TestLabelsLines" >> beam.Map(_test_labels_line),
                   "TestLabels", fs.join(out, o.PRIVATE_DIR, o.TEST_LABELS_CSV), o.TEST_LABELS_COLUMNS)
        self._text(result.excluded | "ExcludedLines" >> beam.Map(_excluded_line),
                   "Excluded", fs.join(out, o.EXCLUDED_CSV), o.EXCLUDED_COLUMNS)
        _ = (result.vocabulary
             | "GatherVocabulary" >> beam.combiners.ToList()
             | "WriteVocabulary" >> beam.Map(_write_vocabulary, fs.join(out, o.VOCABULARY_CSV)))
        _ = (result.excluded_entities
             | "GatherExcludedEntities" >> beam.combiners.ToList()
             | "WriteExcludedEntities" >> beam.Map(_write_excluded_entities,
                                                   fs.join(out, o.EXCLUDED_ENTITIES_CSV)))
        _ = (result.accounting
             | "WriteSelectionJson" >> beam.Map(
                 lambda a: fs.atomic_write(fs.join(stats_dir, o.SELECTION_JSON),
                                           stats.to_json(a))))
        written = result.statistics | "WriteStatistics" >> beam.Map(_write_statistics, stats_dir)
        return written
