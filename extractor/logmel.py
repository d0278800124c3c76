"""Log-mel examples for VGGish, one per sampled second, as the VGGish reference defines them.

The definition (tensorflow/models research/audioset: ``vggish_params``,
``mel_features``, ``vggish_input``):

* input: mono samples at 16 kHz, nominally in [-1, 1] (not clipped: louder
  input simply gives larger magnitudes, as in the reference);
* STFT: 25 ms windows (400 samples) every 10 ms (160 samples), a *periodic*
  Hann window ``0.5 - 0.5 cos(2 pi n / 400)``, FFT length the next power of
  two (512), magnitude of the 257 non-redundant bins;
* mel: 64 triangular bands between 125 and 7500 Hz on the HTK mel scale
  ``1127 ln(1 + f / 700)``, triangles linear in mel, band edges equally spaced
  in mel, the DC bin always weighted 0;
* ``log(mel + 0.01)``;
* examples of 96 frames x 64 bands (0.96 s).

The reference frames examples back to back with a 0.96 s hop. Here there is
one example per *sampled time* ``t`` (the video's frame times, t = 0, 1, 2, ...
s at 1 frame/s): the example for ``t`` is the 96 frames whose windows start at
``t``, ``t + 0.01``, ..., ``t + 0.95`` s, so it covers the samples
``[t, t + 0.975)`` s (the last window ends 25 ms after it starts). So F video
frames get F audio examples, and example k describes the second that frame k
opens; the 40 ms from ``t + 0.96`` to ``t + 1`` start no window of their own.

Missing audio is silence: a second whose samples are missing (a video without
sound, an audio track shorter than the video) is computed on zero samples
(zero padding of the waveform), whose log-mel is ``log(0.01)`` (about
-4.605) in every band. ``LogMelExamples.coverage`` says, per example, which
fraction of its 15,600 samples were real audio, so a caller can tell a
silent second from a missing one.

Everything is computed in float64 (as the reference, which runs NumPy's
float64 FFT), vectorised over examples in chunks; the examples are float32.
"""
from __future__ import annotations

import dataclasses
import numpy as np

SAMPLE_RATE = 16000
WINDOW_SECONDS = 0.025
HOP_SECONDS = 0.010
NUM_BANDS = 64
MEL_MIN_HZ = 125.0
MEL_MAX_HZ = 7500.0
LOG_OFFSET = 0.01
EXAMPLE_FRAMES = 96  # 0.96 s of 10 ms frames

WINDOW_SAMPLES = int(round(SAMPLE_RATE * WINDOW_SECONDS))       # 400
HOP_SAMPLES = int(round(SAMPLE_RATE * HOP_SECONDS))             # 160
FFT_LENGTH = 1 << int(np.ceil(np.log2(WINDOW_SAMPLES)))         # 512
NUM_BINS = FFT_LENGTH // 2 + 1                                   # 257
# Samples one example reads: 95 hops and one window.
EXAMPLE_SAMPLES = (EXAMPLE_FRAMES - 1) * HOP_SAMPLES + WINDOW_SAMPLES  # 15600

# The HTK mel scale as the reference writes it.
_MEL_BREAK_HZ = 700.0
_MEL_HIGH_Q = 1127.0

# What decides the examples, recorded with the audio model's info (and so in
# the cache's model fingerprint).
FRONTEND = {
    "name": "vggish_log_mel", "sample_rate": SAMPLE_RATE, "window_samples": WINDOW_SAMPLES,
    "hop_samples": HOP_SAMPLES, "fft_length": FFT_LENGTH, "window": "periodic_hann",
    "num_bands": NUM_BANDS, "mel_min_hz": MEL_MIN_HZ, "mel_max_hz": MEL_MAX_HZ,
    "mel_scale": "htk", "log_offset": LOG_OFFSET, "example_frames": EXAMPLE_FRAMES,
    "example_start": "sample_time", "missing_audio": "zero_samples",
}

# Examples per vectorised chunk: 64 examples hold ~20 MB of float64 frames
# and ~25 MB of complex spectra, whatever the length of the video.
DEFAULT_CHUNK = 64


class AudioError(ValueError):
    """Audio that cannot be turned into examples; the message says what to pass."""


@dataclasses.dataclass(frozen=True, eq=False)
class LogMelExamples:
    """``examples`` float32 (F, 96, 64); ``times`` float64 (F,) the sample times
    they start at; ``coverage`` float32 (F,) the fraction of each example's
    15,600 samples that came from the waveform (the rest were zeros)."""

    examples: np.ndarray
    times: np.ndarray
    coverage: np.ndarray

    def __len__(self) -> int:
        return int(self.examples.shape[0])

    @property
    def complete(self) -> np.ndarray:
        """bool (F,): examples computed on real audio only."""
        return self.coverage >= 1.0


# ---------------------------------------------------------------------------
# The building blocks (each as the reference defines it)
# ---------------------------------------------------------------------------
def periodic_hann(length: int = WINDOW_SAMPLES) -> np.ndarray:
    """``0.5 - 0.5 cos(2 pi n / length)``, n = 0..length-1: one full cosine period
    (``np.hanning`` is the symmetric window, period length-1)."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi / length * np.arange(length))


def hertz_to_mel(hz) -> np.ndarray:
    """HTK mel scale: ``1127 ln(1 + f / 700)``."""
    return _MEL_HIGH_Q * np.log1p(np.asarray(hz, np.float64) / _MEL_BREAK_HZ)


def mel_to_hertz(mel) -> np.ndarray:
    return _MEL_BREAK_HZ * np.expm1(np.asarray(mel, np.float64) / _MEL_HIGH_Q)


def mel_band_edges(num_bands: int = NUM_BANDS, lower_hz: float = MEL_MIN_HZ,
                   upper_hz: float = MEL_MAX_HZ) -> np.ndarray:
    """``num_bands + 2`` mel values equally spaced from ``lower_hz`` to ``upper_hz``:
    band i has lower edge ``edges[i]``, centre ``edges[i + 1]``, upper ``edges[i + 2]``."""
    return np.linspace(hertz_to_mel(lower_hz), hertz_to_mel(upper_hz), num_bands + 2)


def mel_matrix(num_bands: int = NUM_BANDS, num_bins: int = NUM_BINS,
               sample_rate: int = SAMPLE_RATE, lower_hz: float = MEL_MIN_HZ,
               upper_hz: float = MEL_MAX_HZ) -> np.ndarray:
    """(num_bins, num_bands) float64 weights: ``mel = magnitudes @ mel_matrix()``.

    Bin b is at ``b * nyquist / (num_bins - 1)`` Hz; its weight in band i is the
    triangle ``max(0, min((m - lo) / (c - lo), (hi - m) / (hi - c)))`` of its
    mel value m; the DC bin gets 0 in every band (as HTK).
    """
    nyquist = sample_rate / 2.0
    if not 0.0 <= lower_hz < upper_hz <= nyquist:
        raise AudioError(f"mel bands need 0 <= lower_hz < upper_hz <= Nyquist ({nyquist:g} Hz), "
                         f"got {lower_hz:g} and {upper_hz:g}")
    bins_mel = hertz_to_mel(np.linspace(0.0, nyquist, num_bins))[:, None]
    edges = mel_band_edges(num_bands, lower_hz, upper_hz)
    lo, centre, hi = edges[:-2][None], edges[1:-1][None], edges[2:][None]
    weights = np.maximum(0.0, np.minimum((bins_mel - lo) / (centre - lo),
                                         (hi - bins_mel) / (hi - centre)))
    weights[0, :] = 0.0
    return weights


_MEL = mel_matrix()
# Only bins 5..239 (125-7500 Hz) have weight: the product skips the zero rows
# (the same sums, a tenth fewer multiplications).
_MEL_ROWS = np.flatnonzero(_MEL.any(axis=1))
_MEL_LO, _MEL_HI = int(_MEL_ROWS[0]), int(_MEL_ROWS[-1]) + 1
_MEL_USED = np.ascontiguousarray(_MEL[_MEL_LO:_MEL_HI])
_WINDOW = periodic_hann()
_FRAME_OFFSETS = np.arange(EXAMPLE_FRAMES, dtype=np.int64) * HOP_SAMPLES


def _log_mel_frames(frames: np.ndarray) -> np.ndarray:
    """(..., 400) samples -> (..., 64) log-mel, in float64."""
    spectra = np.fft.rfft(frames.astype(np.float64) * _WINDOW, FFT_LENGTH)
    return np.log(np.abs(spectra[..., _MEL_LO:_MEL_HI]) @ _MEL_USED + LOG_OFFSET)


# ---------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------
def as_waveform(waveform, sample_rate: int = SAMPLE_RATE, what: str = "waveform") -> np.ndarray:
    """A 1-D float array of 16 kHz samples (``None`` means no audio: 0 samples).

    int16 PCM is scaled by 1/32768 (as the reference reads WAV files); floats
    are used as given. Other rates, several channels, NaN or Inf are errors.
    """
    if sample_rate != SAMPLE_RATE:
        raise AudioError(f"{what}: VGGish examples are defined on {SAMPLE_RATE} Hz audio, got "
                         f"sample_rate={sample_rate}; resample to 16 kHz mono first (the "
                         f"decoder's audio track already is)")
    if waveform is None:
        return np.zeros(0, np.float32)
    w = np.asarray(waveform)
    if w.dtype == np.int16:
        w = w.astype(np.float32) / 32768.0
    elif not np.issubdtype(w.dtype, np.floating):
        raise AudioError(f"{what}: expected float samples in [-1, 1] (or int16 PCM), got "
                         f"dtype {w.dtype}")
    if w.ndim != 1:
        raise AudioError(f"{what}: expected mono samples of shape (n,), got shape {w.shape}; "
                         f"mix the channels down to mono first")
    if w.size and not np.isfinite(w).all():
        bad = np.flatnonzero(~np.isfinite(w))
        raise AudioError(f"{what}: {len(bad)} samples are NaN or Inf (first at "
                         f"{bad[0] / SAMPLE_RATE:.3f} s); the audio decode is broken")
    return w


def _as_times(times, what: str) -> np.ndarray:
    t = np.asarray(times, np.float64)
    if t.ndim != 1:
        raise AudioError(f"{what}: times must be a 1-D array of seconds (the video's sample "
                         f"times), got shape {t.shape}")
    if t.size and not np.isfinite(t).all():
        raise AudioError(f"{what}: times must be finite seconds, got {t[~np.isfinite(t)][:3]}")
    if t.size and t.min() < 0:
        raise AudioError(f"{what}: times must be >= 0 (seconds from the video's start), "
                         f"got {t.min()!r}")
    return t


def second_times(num_seconds: int) -> np.ndarray:
    """The sample times 0, 1, ..., num_seconds - 1 (1 frame per second)."""
    if not isinstance(num_seconds, (int, np.integer)) or num_seconds < 0:
        raise AudioError(f"num_seconds must be an integer >= 0, got {num_seconds!r}")
    return np.arange(int(num_seconds), dtype=np.float64)


# ---------------------------------------------------------------------------
# The public transforms
# ---------------------------------------------------------------------------
def waveform_to_examples(waveform, times, sample_rate: int = SAMPLE_RATE, *,
                         chunk: int = DEFAULT_CHUNK, what: str = "waveform") -> LogMelExamples:
    """One 96 x 64 log-mel example per sample time (see the module docstring).

    ``waveform``: 16 kHz mono samples (float, or int16 PCM), or None for a
    video without audio. ``times``: (F,) seconds, normally the decoder's
    ``SampledFrames.times``; example k starts at sample ``round(times[k] *
    16000)``. Samples beyond the waveform's end are zeros (``coverage`` < 1).
    """
    w = as_waveform(waveform, sample_rate, what)
    t = _as_times(times, what)
    if chunk < 1:
        raise AudioError(f"chunk must be >= 1, got {chunk}")
    n = t.shape[0]
    if n == 0:
        return LogMelExamples(np.zeros((0, EXAMPLE_FRAMES, NUM_BANDS), np.float32), t,
                              np.zeros(0, np.float32))
    starts = np.rint(t * SAMPLE_RATE).astype(np.int64)
    coverage = (np.clip(w.shape[0] - starts, 0, EXAMPLE_SAMPLES) / EXAMPLE_SAMPLES
                ).astype(np.float32)
    # Zero padding to the end of the last example; nothing beyond it is read.
    needed = int(starts.max()) + EXAMPLE_SAMPLES
    padded = np.zeros(needed, w.dtype)
    keep = min(needed, w.shape[0])
    padded[:keep] = w[:keep]
    windows = np.lib.stride_tricks.sliding_window_view(padded, WINDOW_SAMPLES)
    out = np.empty((n, EXAMPLE_FRAMES, NUM_BANDS), np.float32)
    for lo in range(0, n, chunk):
        idx = starts[lo:lo + chunk, None] + _FRAME_OFFSETS[None, :]
        out[lo:lo + chunk] = _log_mel_frames(windows[idx])
    return LogMelExamples(out, t, coverage)


def log_mel_spectrogram(waveform, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The continuous (T, 64) float32 log-mel spectrogram: one row per 10 ms hop
    with a whole window inside the waveform (T = 1 + (n - 400) // 160, 0 when
    n < 400), as the reference's ``log_mel_spectrogram`` with VGGish's values."""
    w = as_waveform(waveform, sample_rate)
    if w.shape[0] < WINDOW_SAMPLES:
        return np.zeros((0, NUM_BANDS), np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(w, WINDOW_SAMPLES)[::HOP_SAMPLES]
    out = np.empty((frames.shape[0], NUM_BANDS), np.float32)
    step = DEFAULT_CHUNK * EXAMPLE_FRAMES
    for lo in range(0, frames.shape[0], step):
        out[lo:lo + step] = _log_mel_frames(frames[lo:lo + step])
    return out


def silence_value() -> float:
    """The log-mel of silence (and of missing audio): ``log(0.01)``."""
    return float(np.log(LOG_OFFSET))


def example_span(time_s: float) -> tuple[float, float]:
    """Seconds ``[start, end)`` of the samples the example at ``time_s`` reads."""
    start = round(time_s * SAMPLE_RATE) / SAMPLE_RATE
    return start, start + EXAMPLE_SAMPLES / SAMPLE_RATE

