"""The write stage: a job's records, failures and counts, into its staging folder.

``WriteDataset`` writes, below ``staging`` (``pipeline.launch`` publishes it):

* each record stream through ``WriteRecords`` (``WriteToTFRecord``), at the
  prefix given for its tag (a build: ``frame/train`` ...; ``extract``:
  ``frame``, ``video`` or ``features``);
* ``failures.jsonl``: one ``FailureRecord.to_dict()`` per line, sorted by video
  id (``WriteSortedLines``: no worker holds every failure);
* ``counts.json``: written videos and frames per split, excluded rows and
  failures per reason, the decode-warning summary, merged with ``CountsFn``
  (``pipeline.counts``) so that no worker gathers the written videos, the
  failures or the excluded rows.

Every failure is counted here, once, whatever stage it comes from:
``failed_{stage}``, ``failed_{stage}_{kind}`` and ``videos_failed``.
"""
from __future__ import annotations

from typing import Mapping

import apache_beam as beam

from yt8m import counters, fs
from yt8m.pipeline.counts import CountsFn
from yt8m.pipeline.io import WriteRecords, WriteSortedLines
from yt8m.records import FailureRecord

FAILURES_JSONL = "failures.jsonl"
COUNTS_JSON = "counts.json"
SORT_DIR = ".sort"


class CountFailuresFn(beam.DoFn):
    """Counts each ``FailureRecord`` by stage and kind, and passes it on."""

    def setup(self):
        self.counters = counters.Counters()

    def process(self, record: FailureRecord):
        self.counters.inc(counters.VIDEOS_FAILED)
        self.counters.inc(counters.failed_at(record.stage))
        self.counters.inc(counters.failed(record.stage, record.kind))
        yield record


def failure_line(record: FailureRecord) -> tuple:
    """``(sort key, JSON line)`` of one failure for ``WriteSortedLines``."""
    return record.sort_key(), record.to_json()


def _label(tag: str) -> str:
    return "".join(part.title() for part in tag.split("_"))


class WriteDataset(beam.PTransform):
    """A job's parts -> staged TFRecords, failures.jsonl and counts.json (module docstring).

    ``parts``: ``records`` (``{tag: PCollection[bytes]}``), ``written``
    (``WrittenVideo``), ``failures`` (``FailureRecord``) and, for a build,
    ``excluded`` (``ExcludedRow``) and ``accounting`` (the selection's
    accounting, one dict). ``prefixes``: ``{tag: shard prefix below staging}``.
    """

    def __init__(self, staging: str, prefixes: Mapping[str, str], num_shards: int = 0):
        super().__init__()
        if not staging:
            raise ValueError("WriteDataset needs a staging folder")
        if not prefixes:
            raise ValueError("WriteDataset needs the shard prefix of each record stream")
        if num_shards < 0:
            raise ValueError(f"--num_shards must be >= 0 (0 lets the runner decide), "
                             f"got {num_shards}")
        self.staging, self.prefixes, self.num_shards = staging, dict(prefixes), num_shards

    def expand(self, parts):
        staging = self.staging
        records = parts["records"]
        unknown = sorted(set(records) - set(self.prefixes))
        if unknown:
            raise ValueError(f"WriteDataset has no shard prefix for the record streams "
                             f"{unknown}")
        for tag, stream in sorted(records.items()):
            _ = stream | f"Write{_label(tag)}" >> WriteRecords(
                fs.join(staging, self.prefixes[tag]), self.num_shards)
        failures = parts["failures"] | "CountFailures" >> beam.ParDo(CountFailuresFn())
        _ = (failures
             | "FailureLines" >> beam.Map(failure_line)
             | "WriteFailures" >> WriteSortedLines(fs.join(staging, FAILURES_JSONL),
                                                   fs.join(staging, SORT_DIR)))
        events = [parts["written"], failures]
        if parts.get("excluded") is not None:
            events.append(parts["excluded"])
        counts = tuple(events) | "CountEvents" >> beam.Flatten() | "Count" >> \
            beam.CombineGlobally(CountsFn())
        accounting = parts.get("accounting")
        if accounting is None:
            accounting = (failures.pipeline | "NoSelection" >> beam.Create([None]))
        counts_path = fs.join(staging, COUNTS_JSON)
        return (accounting
                | "WriteCounts" >> beam.Map(
                    lambda selection, c: fs.write_json(counts_path, c.to_dict(selection)),
                    beam.pvalue.AsSingleton(counts)))
