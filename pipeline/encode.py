"""The encode stage: ``VideoFeatures`` -> serialized records per (kind, split).

``EncodeVideos`` is the one encoder of every job:

* compressed (a build, ``extract --artifacts``): ``compression.codec.encode_frames``
  with the PCA and quantizer as ``AsSingleton`` side inputs -> a frame-level
  ``SequenceExample`` (``frame``) and a video-level ``Example`` (``video``,
  the mean of the dequantized frames), in the YouTube-8M layout of
  ``pipeline.schema``;
* raw (``extract --no_compress``): the float features as they are
  (``features``, ``schema.encode_raw_feature_example``).

Records go to one output per ``record_tag(kind, split)``: ``frame_train`` ...
in a build, ``frame``/``video``/``features`` for ``extract`` (whose videos
have no split). Test-split records never carry labels (they live in
OUT/private/ only). Each encoded video is also summarised as a ``WrittenVideo``
(``written``) for the counts; a video that cannot be encoded becomes an
``encode`` ``FailureRecord`` (``failures``), so the accounting still balances.
"""
from __future__ import annotations

from typing import Optional, Sequence

import apache_beam as beam
import numpy as np

from yt8m import counters
from yt8m.compression.codec import encode_frames, mean_rgb
from yt8m.pipeline import schema
from yt8m.pipeline.io import RAW_KIND, RECORD_KINDS, SPLITS, record_tag
from yt8m.records import VideoFeatures, WrittenVideo

FAILURES = "failures"
WRITTEN = "written"
TEST_SPLIT = SPLITS[2]


def record_labels(vf: VideoFeatures) -> Optional[list]:
    """The labels a record carries: none for the test split (private), else the video's."""
    video = vf.video
    if video.split == TEST_SPLIT or video.labels is None:
        return None
    return list(video.labels)


class _EncodeFn(beam.DoFn):
    """Shared shell: one video -> its records by kind (the subclass's ``_records``), or a
    failure; counts."""

    def setup(self):
        self.counters = counters.Counters()

    def _failure(self, vf: VideoFeatures, kind: str, error: str):
        return beam.pvalue.TaggedOutput(FAILURES, vf.video.failure("encode", kind, error))

    def process(self, vf: VideoFeatures, *side):
        if vf.num_frames == 0:
            yield self._failure(vf, "no_frames", "no frames were extracted")
            return
        try:
            records = self._records(vf, *side)
        except Exception as e:  # noqa: BLE001 - one video never stops the build
            yield self._failure(vf, type(e).__name__, f"{type(e).__name__}: {e}")
            return
        split = vf.video.split
        self.counters.inc(counters.FRAMES_WRITTEN, vf.num_frames)
        self.counters.inc(counters.VIDEOS_WRITTEN)
        if split:
            self.counters.inc(counters.videos_written(split))
        for kind, data in records.items():
            yield beam.pvalue.TaggedOutput(record_tag(kind, split), data)
        yield beam.pvalue.TaggedOutput(WRITTEN, WrittenVideo(
            vf.video_id, split, vf.num_frames, tuple(vf.decode_warnings)))


class EncodeVideoFn(_EncodeFn):
    """Raw features -> frame-level and video-level records (PCA and quantizer side inputs).

    ``audio``: a ``compression.audio.AudioCompression`` when the job writes audio
    features: each video's ``audio`` embeddings become the frame-level ``audio``
    bytes and the video-level ``mean_audio`` (a video without them fails here:
    the extraction gives every video zeros or embeddings when audio is on).
    """

    def __init__(self, audio=None):
        super().__init__()
        self.audio = audio

    def process(self, vf: VideoFeatures, pca, quantizer):
        if pca is None or quantizer is None:
            # The fit had nothing to fit (no train frames): say so per video,
            # so that the accounting still balances and failures.jsonl explains.
            yield self._failure(
                vf, "no_train_frames", "no PCA and quantizer to encode with: the train split "
                "has fewer than 2 frames (every train video was excluded or failed; see the "
                "other lines of failures.jsonl and excluded.csv, and check --split)")
            return
        yield from super().process(vf, pca, quantizer)

    def _records(self, vf: VideoFeatures, pca, quantizer) -> dict:
        q = encode_frames(vf.features, pca, quantizer)
        labels = record_labels(vf)
        qa = mean_audio = None
        if self.audio is not None:
            if vf.audio is None or len(vf.audio) != vf.num_frames:
                raise ValueError(f"audio features for {vf.num_frames} frames expected, got "
                                 f"{None if vf.audio is None else len(vf.audio)}")
            qa = self.audio.encode(vf.audio)
            mean_audio = self.audio.mean(qa)
        return {"frame": schema.encode_frame_example(vf.video_id, q, labels,
                                                     quantized_audio=qa),
                # The mean of the dequantized frames, as every writer computes it.
                "video": schema.encode_video_example(vf.video_id, mean_rgb(q, quantizer),
                                                     labels, mean_audio=mean_audio)}


class EncodeRawFn(_EncodeFn):
    """Raw features -> one raw-feature SequenceExample (``extract --no_compress``)."""

    def _records(self, vf: VideoFeatures) -> dict:
        return {RAW_KIND: schema.encode_raw_feature_example(
            vf.video_id, np.asarray(vf.features, np.float32), vf.frame_times,
            record_labels(vf))}


class EncodeVideos(beam.PTransform):
    """``VideoFeatures`` -> ``{"records": {tag: PCollection[bytes]}, "written", "failures"}``.

    Compressed with ``pca`` and ``quantizer`` (one-element PCollections, used
    as side inputs), raw with ``raw=True``. ``splits``: the splits records are
    routed by (a build's three), or ``(None,)`` for videos without one.
    """

    def __init__(self, pca=None, quantizer=None, *, raw: bool = False,
                 splits: Sequence[Optional[str]] = SPLITS, audio=None):
        super().__init__()
        if raw == (pca is not None or quantizer is not None):
            raise ValueError("EncodeVideos needs either the fitted PCA and quantizer "
                             "PCollections (compressed records) or raw=True (raw features)")
        if not raw and (pca is None or quantizer is None):
            raise ValueError("EncodeVideos needs both the PCA and the quantizer PCollections")
        if not splits:
            raise ValueError("EncodeVideos needs the splits to route records by, or (None,)")
        self.pca, self.quantizer, self.raw, self.splits = pca, quantizer, raw, tuple(splits)
        self.audio = audio  # compression.audio.AudioCompression, or None: no audio written

    @property
    def kinds(self) -> tuple:
        return (RAW_KIND,) if self.raw else RECORD_KINDS

    def tags(self) -> list[str]:
        return [record_tag(k, s) for k in self.kinds for s in self.splits]

    def expand(self, features):
        tags = self.tags()
        if self.raw:
            out = features | "EncodeRaw" >> beam.ParDo(EncodeRawFn()).with_outputs(
                *tags, FAILURES, WRITTEN)
        else:
            out = features | "EncodeVideos" >> beam.ParDo(
                EncodeVideoFn(self.audio), beam.pvalue.AsSingleton(self.pca),
                beam.pvalue.AsSingleton(self.quantizer)).with_outputs(*tags, FAILURES, WRITTEN)
        return {"records": {t: out[t] for t in tags}, "written": out[WRITTEN],
                "failures": out[FAILURES]}
