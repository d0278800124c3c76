"""The ``vocab`` job: the selection staged under ``OUT/.tmp/vocab/``, then published by rename.

``run_selection`` runs ``SelectVideos`` with its files going to the staging
folder and, once the pipeline has succeeded, moves every one of them into OUT
(``pipeline.io.publish_tree``), so that a killed run leaves OUT as it was and
a finished one leaves the whole new selection. A build's ``dataset_info.json``
in the same OUT vouches for that build's splits: a new selection deletes it
first (the dataset's records no longer match the new splits.csv).

``build`` and ``resplit`` stage the selection the same way inside their own
staging folder and publish it with the rest of the dataset (``pipeline.launch``).
"""
from __future__ import annotations

from typing import Optional, Sequence

import apache_beam as beam

from yt8m import fs
from yt8m.pipeline import io as pio
from yt8m.pipeline.runner import pipeline_options
from yt8m.vocab.config import VocabConfig
from yt8m.vocab.select import SelectVideos

JOB = "vocab"


def run_selection(videos: str, entities: str, ratings: Optional[str], config: VocabConfig,
                  output_dir: str, beam_args: Sequence[str] = (), test_pipeline=None):
    """Select, split and publish into ``output_dir``; returns the finished PipelineResult."""
    staging = pio.staging_dir(output_dir, JOB)
    fs.delete(staging)
    p = test_pipeline if test_pipeline is not None else beam.Pipeline(
        options=pipeline_options(beam_args))
    _ = p | "SelectVideos" >> SelectVideos(videos, entities, ratings, config,
                                           output_dir=staging)
    result = p.run()
    state = result.wait_until_finish()
    if str(state) not in ("DONE", "PipelineState.DONE"):
        raise RuntimeError(f"the selection pipeline ended in state {state}; nothing was "
                           f"published in {output_dir}")
    publish_selection(staging, output_dir)
    return result


def publish_selection(staging: str, out: str) -> list[str]:
    """Move a staged selection into ``out`` (invalidating a build there); returns the paths."""
    fs.delete(fs.join(out, pio.DATASET_INFO))
    published = pio.publish_tree(staging, out)
    fs.delete(staging)
    return published
