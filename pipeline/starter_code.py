"""What the released YouTube-8M starter code can and cannot read of a build.

The released readers (``readers.py``, ``utils.Dequantize``) parse the same
record layout as ours (``pipeline.schema``), but make four assumptions a build
may break, silently for the first:

* frame-level bytes are dequantized as uniform [-2, 2]:
  ``bytes * 4/255 + (4/512 - 2)``. Only ``--quantizer uniform`` builds have those
  levels; the default Lloyd-Max codebook
  reads back wrong (no error, wrong numbers). Video-level ``mean_rgb`` is
  stored as floats, so it reads back right whatever the codebook;
* labels become a 3,862-wide vector: a label id >= 3,862 fails;
* at most 300 frames are read per video (we sample up to 360);
* the reader classes default to ``rgb`` + ``audio`` features.

``starter_code_section`` states each from the build's own artifacts and
records (never from its flags alone): the ``starter_code`` section of
dataset_info.json. ``summary_line`` is the build summary's one line about it.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from yt8m import fs
from yt8m.compression.quantize import Quantizer, uniform_levels
from yt8m.pipeline import io as pio
from yt8m.pipeline import schema

STARTER_NUM_CLASSES = 3862       # readers.py: num_classes=3862 (labels one-hot of this width)
STARTER_MAX_FRAMES = 300         # readers.py: max_frames=300
SPLITS = ("train", "validate", "test")


def dequantize_error(quantizer: Quantizer) -> float:
    """max |our level - the released Dequantize| over the codes our quantizer writes."""
    levels = np.asarray(quantizer.levels, np.float32)
    return float(np.max(np.abs(levels - uniform_levels()[:levels.shape[0]])))


def is_released_codebook(quantizer: Quantizer) -> bool:
    """True when the released ``Dequantize`` returns our levels bit for bit."""
    levels = np.asarray(quantizer.levels, np.float32)
    return levels.shape == (256,) and bool(np.array_equal(levels, uniform_levels()))


def _first_record(out: str, kind: str) -> Optional[bytes]:
    import tensorflow as tf  # noqa: PLC0415 - only this reader needs it
    for split in SPLITS:
        for m in sorted(fs.match(pio.shard_pattern(out, f"{kind}/{split}")),
                        key=lambda m: m.path):
            for r in tf.data.TFRecordDataset(m.path).take(1):
                return r.numpy()
    return None


def audio_presence(out: str) -> dict:
    """Whether the records carry ``audio`` / ``mean_audio``, from the first record of each kind
    (every record of a build has the same features)."""
    frame, video = _first_record(out, "frame"), _first_record(out, "video")
    return {"frame": (frame is not None
                      and schema.parse_frame_example(frame).audio is not None),
            "video": (video is not None
                      and schema.parse_video_example(video).mean_audio is not None)}


def starter_code_section(out: str, quantizer: Optional[Quantizer], entities: Optional[int],
                         max_frames: Optional[int]) -> dict:
    """dataset_info.json's ``starter_code``: per layout, whether the released starter code
    reads it correctly, and its limits against this build. ``max_frames`` is the most
    frames a video of this build can have (sampling fps x max seconds)."""
    audio = audio_presence(out)
    exact = quantizer is not None and is_released_codebook(quantizer)
    err = None if quantizer is None else round(dequantize_error(quantizer), 6)
    classes_ok = entities is None or entities <= STARTER_NUM_CLASSES
    frames_ok = max_frames is not None and max_frames <= STARTER_MAX_FRAMES
    frame_note = ("bytes are the released uniform [-2, 2] levels: Dequantize reads them exactly"
                  if exact else
                  f"bytes index a non-uniform codebook (artifacts/quantizer.npz): the released "
                  f"Dequantize misreads them by up to {err} (no error raised); rebuild with "
                  f"--quantizer uniform (a resplit of this build reuses its cached features)")
    return {
        "layouts": {
            "video": {"dequantized_correctly": True, "features": ["mean_rgb"]
                      + (["mean_audio"] if audio["video"] else []),
                      "note": "mean_rgb is stored as floats; no dequantization"},
            "frame": {"dequantized_correctly": exact, "dequantize_max_error": err,
                      "features": ["rgb"] + (["audio"] if audio["frame"] else []),
                      "note": frame_note},
        },
        "audio": audio,
        "num_classes": {"limit": STARTER_NUM_CLASSES, "build": entities,
                        "within_limit": classes_ok},
        "max_frames": {"limit": STARTER_MAX_FRAMES, "build": max_frames,
                       "within_limit": frames_ok},
        "docs": "docs/compression.md",
    }


def summary_line(section: dict) -> str:
    """The build summary's line: can the released starter code read this build right?"""
    frame = section["layouts"]["frame"]
    parts = ["video level yes",
             "frame level " + ("yes" if frame["dequantized_correctly"] else
                               f"NO (non-uniform bytes, Dequantize off by up to "
                               f"{frame['dequantize_max_error']}; use --quantizer uniform)")]
    if not section["num_classes"]["within_limit"]:
        parts.append(f"{section['num_classes']['build']} classes > "
                     f"{STARTER_NUM_CLASSES}")
    if not section["max_frames"]["within_limit"]:
        parts.append(f"frames beyond {STARTER_MAX_FRAMES} not read")
    if not (section["audio"]["frame"] or section["audio"]["video"]):
        parts.append("no audio (--feature_names rgb / mean_rgb)")
    return "  starter code: " + "; ".join(parts) + " (docs/compression.md)"
