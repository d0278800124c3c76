"""Audio features' cost: log-mel + VGGish per second of audio, against the RGB path per frame.

Figures (``run(quick)``), measured in one run on the same number of seconds
(F: 32 quick, 96 full, in three clips of different lengths and seeds):

* ``audio_vs_rgb_per_second_cpu``: seconds of audio per second through the
  audio path (``extractor.logmel.waveform_to_examples`` then VGGish,
  batch 32) over frames per second through the RGB network (Keras
  Inception-v3, batch 32) on F frames: how many times cheaper a video's audio
  is than its frames. Adding audio to an extraction costs about
  ``1 / ratio`` of the RGB network's time. No target (``met`` None).
* ``audio_logmel_vs_vggish``: seconds of audio per second through the log-mel
  front end alone over the same through VGGish alone: how small the NumPy
  front end's share is. No target.

Both networks use seeded random weights (speed does not depend on the
values; nothing is downloaded) and are warmed up (traced) before timing.
Decoding the audio track is not included (the decoder measures its own).
"""
from __future__ import annotations

import time

import numpy as np

BATCH = 32


def _clips(quick: bool) -> list[np.ndarray]:
    """Three waveforms (tones, chirps and noise) of different lengths and seeds."""
    lengths = (10, 11, 11) if quick else (30, 32, 34)
    clips = []
    for seed, seconds in enumerate(lengths):
        rng = np.random.default_rng(100 + seed)
        t = np.arange(seconds * 16000) / 16000.0
        f = rng.uniform(150, 3000) * (1 + 0.5 * np.sin(2 * np.pi * t / rng.uniform(3, 9)))
        w = 0.3 * np.sin(2 * np.pi * np.cumsum(f) / 16000.0) + 0.05 * rng.standard_normal(t.size)
        clips.append(np.clip(w, -1, 1).astype(np.float32))
    return clips


def _batched(fn, x: np.ndarray, batch: int = BATCH) -> float:
    start = time.perf_counter()
    for i in range(0, len(x), batch):
        fn(x[i:i + batch])
    return time.perf_counter() - start


def run(quick: bool = False) -> list[dict]:
    from yt8m.extractor.logmel import second_times, waveform_to_examples
    from yt8m.extractor.vggish import load_audio_model
    from yt8m.extractor.weights import load_feature_model

    clips = _clips(quick)
    seconds = sum(len(c) // 16000 for c in clips)
    audio = load_audio_model("random")
    rgb = load_feature_model("random")
    # Trace and warm both networks, untimed.
    audio.predict(np.zeros((BATCH, 96, 64), np.float32))
    rgb.predict(np.zeros((BATCH, 299, 299, 3), np.uint8))
    waveform_to_examples(clips[0][:16000], [0.0])

    start = time.perf_counter()
    examples = np.concatenate([waveform_to_examples(c, second_times(len(c) // 16000)).examples
                               for c in clips])
    t_logmel = time.perf_counter() - start
    t_vggish = _batched(audio.predict, examples)
    frames = np.random.default_rng(0).integers(0, 256, (seconds, 299, 299, 3), dtype=np.uint8)
    t_rgb = _batched(rgb.predict, frames)

    audio_rate = seconds / (t_logmel + t_vggish)
    rgb_rate = seconds / t_rgb
    logmel_rate, vggish_rate = seconds / t_logmel, seconds / t_vggish
    return [
        {"name": "audio_vs_rgb_per_second_cpu", "value": audio_rate, "unit": "audio s/s",
         "reference": f"Keras Inception-v3 frames/s (random weights, batch {BATCH}) on "
                      f"{seconds} frames; audio: log-mel {t_logmel / seconds * 1e3:.1f} ms + "
                      f"VGGish {t_vggish / seconds * 1e3:.1f} ms per second",
         "reference_value": rgb_rate, "ratio": audio_rate / rgb_rate, "target": None,
         "met": None},
        {"name": "audio_logmel_vs_vggish", "value": logmel_rate, "unit": "audio s/s",
         "reference": f"VGGish alone (random weights, batch {BATCH}) on the same "
                      f"{seconds} examples",
         "reference_value": vggish_rate, "ratio": logmel_rate / vggish_rate, "target": None,
         "met": None},
    ]


if __name__ == "__main__":
    import json
    import sys
    print(json.dumps(run(quick="--quick" in sys.argv), indent=1))
