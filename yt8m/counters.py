"""Every Beam counter the project reports: one namespace, names as constants.

A counter is incremented in one stage and read in another (dataset_info.json,
the closing summary, tests), so its name is written once, here. Counters
per reason or per split are built by the functions below, never by f-strings
at the call sites, so the writer and the reader cannot disagree.

``counter(name)`` returns the Beam counter (``Metrics.counter(NAMESPACE, name)``);
``read(result)`` sums a finished pipeline's counters of this namespace.
"""
from __future__ import annotations

from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter

NAMESPACE = "yt8m"
# Beam's own RunInference metrics (batch sizes, inference latency) for the
# feature network, kept apart from the project's counters.
INFERENCE_NAMESPACE = "yt8m_inference"
AUDIO_INFERENCE_NAMESPACE = "yt8m_audio_inference"

# vocab: selection
VOCAB_ROWS = "vocab_rows"
VOCAB_RATINGS_FOR_UNKNOWN_ENTITIES = "vocab_ratings_for_unknown_entities"

# extractor: decode and inference
EXTRACT_VIDEOS_DECODED = "extract_videos_decoded"
EXTRACT_FRAMES_DECODED = "extract_frames_decoded"
EXTRACT_DECODE_FAILURES = "extract_decode_failures"
EXTRACT_MODEL_FAILURES = "extract_model_failures"
EXTRACT_VIDEOS_DONE = "extract_videos_done"
EXTRACT_FRAMES_DONE = "extract_frames_done"

# pipeline: cache
CACHE_HITS = "cache_hits"
CACHE_MISSES = "cache_misses"
CACHE_CORRUPT_ENTRIES = "cache_corrupt_entries"
CACHE_ENTRIES_WRITTEN = "cache_entries_written"
CACHE_ENTRIES_NOT_STORABLE = "cache_entries_not_storable"
VIDEOS_EXTRACTED = "videos_extracted"
FRAMES_EXTRACTED = "frames_extracted"
VIDEOS_WITH_DECODE_WARNINGS = "videos_with_decode_warnings"

# pipeline: thumbnails written from the build's (or extract's) own decode
THUMBNAILS_VIDEOS_WRITTEN = "thumbnails_videos_written"
THUMBNAILS_IMAGES_WRITTEN = "thumbnails_images_written"
THUMBNAILS_VIDEOS_NONE = "thumbnails_videos_none"        # the decode gave none (no frames)
THUMBNAILS_WRITE_FAILURES = "thumbnails_write_failures"

# extractor: what decoding took (extractor.decode.DecodeStats), summed over videos
DECODE_PACKETS = "decode_packets"
DECODE_PACKETS_DECODED = "decode_packets_decoded"
DECODE_PACKETS_SKIPPED = "decode_packets_skipped"
DECODE_FRAMES_DECODED = "decode_frames_decoded"
DECODE_RESTARTS = "decode_restarts"
DECODE_DEVICE_FALLBACKS = "decode_device_fallbacks"     # videos asked on a device, decoded on CPU


def decode_device_videos(device: str) -> str:
    """Videos decoded on ``device`` (``cpu``, ``cuda``)."""
    return f"decode_device_{device}_videos"

# compression and writing
PCA_FIT_FRAMES = "pca_fit_frames"
PCA_FIT_UNITS = "pca_fit_units"                    # syrk units summed exactly
PCA_FIT_LARGE_BUCKETS = "pca_fit_large_buckets"    # buckets over bucket_frames, video by video
QUANTIZER_FIT_VALUES = "quantizer_fit_values"
QUALITY_HELDOUT_FRAMES = "quality_heldout_frames"  # held-out frames seen by the sampler
FRAMES_WRITTEN = "frames_written"
VIDEOS_WRITTEN = "videos_written"
VIDEOS_FAILED = "videos_failed"


def vocab_excluded(reason: str) -> str:
    """Manifest rows excluded by the selection for ``reason`` (vocab.rules' reasons)."""
    return f"vocab_excluded_{reason}"


def vocab_entities_excluded(reason: str) -> str:
    return f"vocab_entities_excluded_{reason}"


def vocab_selected(split: str) -> str:
    return f"vocab_selected_{split}"


def videos_written(split: str) -> str:
    return f"videos_written_{split}"


def failed_at(stage: str) -> str:
    """Videos that failed at ``stage`` (``failed_decode``, ``failed_model``, ...)."""
    return f"failed_{stage}"


def failed(stage: str, kind: str) -> str:
    """Videos that failed at ``stage`` with ``kind`` (a ``records.FailureRecord``'s)."""
    return f"failed_{stage}_{kind}"


def decode_warning(kind: str) -> str:
    """Written videos whose decode warned ``kind`` (a ``records.DecodeWarning``'s)."""
    return f"decode_warnings_{kind}"


def counter(name: str):
    return Metrics.counter(NAMESPACE, name)


class Counters:
    """Counters by name, created on first use (one Beam counter object per name)."""

    def __init__(self):
        self._made: dict = {}

    def inc(self, name: str, n: int = 1) -> None:
        c = self._made.get(name)
        if c is None:
            c = self._made[name] = counter(name)
        c.inc(n)


def read(result) -> dict:
    """``{name: value}`` of a finished pipeline's counters in NAMESPACE.

    Committed values where the runner reports them, else attempted ones; {}
    for runners that report no metrics.
    """
    try:
        res = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))
    except Exception:  # noqa: BLE001 - some runners report no metrics
        return {}
    out: dict = {}
    for c in res.get("counters", []):
        value = c.committed if c.committed is not None else c.attempted
        out[c.key.metric.name] = out.get(c.key.metric.name, 0) + int(value or 0)
    return dict(sorted(out.items()))


# Audio features (extractor.transforms with audio; pipeline.audio).
AUDIO_VIDEOS_WITH_FEATURES = "audio_videos_with_features"
AUDIO_EXAMPLES_DONE = "audio_examples_done"


def audio_missing(reason: str) -> str:
    """Videos written with zero audio features because their audio was ``reason``
    (``absent``: no audio stream; ``failed``: it could not be decoded)."""
    return f"audio_missing_{reason}"
