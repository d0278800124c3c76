"""Log-mel examples: the VGGish definition, checked on hand-computed cases and an
independent straightforward implementation."""
from __future__ import annotations

import math

import numpy as np
import pytest

from tests.extractor.audio_support import make_waveform
from yt8m.extractor import logmel as L

SR = 16000
SILENCE = math.log(0.01)


def _hz_to_mel(f):
    return 1127.0 * math.log(1.0 + f / 700.0)


def _mel_to_hz(m):
    return 700.0 * (math.exp(m / 1127.0) - 1.0)


def _band_centres_mel():
    lo, hi = _hz_to_mel(125.0), _hz_to_mel(7500.0)
    return [lo + (hi - lo) * (i + 1) / 65 for i in range(64)]


def _tone(freq, seconds=1.0, amplitude=0.5, phase=0.3):
    t = np.arange(int(seconds * SR)) / SR
    return (amplitude * np.sin(2 * np.pi * freq * t + phase)).astype(np.float64)


def straightforward_examples(waveform, times):
    """The definition written out plainly: loops over examples, frames, bins and
    bands; an explicit DFT; the periodic Hann and HTK triangles by formula."""
    n = np.arange(400)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / 400)
    lo, hi = _hz_to_mel(125.0), _hz_to_mel(7500.0)
    edges = [lo + (hi - lo) * i / 65 for i in range(66)]
    weights = np.zeros((257, 64))
    for b in range(1, 257):  # bin 0 (DC) keeps weight 0
        m = _hz_to_mel(b * 8000.0 / 256)
        for i in range(64):
            left, centre, right = edges[i], edges[i + 1], edges[i + 2]
            if left < m <= centre:
                weights[b, i] = (m - left) / (centre - left)
            elif centre < m < right:
                weights[b, i] = (right - m) / (right - centre)
    # A 512-point DFT of a 400-sample frame zero padded to 512.
    dft = np.exp(-2j * np.pi * np.outer(np.arange(257), np.arange(400)) / 512)
    out = []
    for t in times:
        start = int(round(t * SR))
        example = []
        for j in range(96):
            seg = np.array([waveform[start + 160 * j + q] if start + 160 * j + q < len(waveform)
                            else 0.0 for q in range(400)], np.float64)
            magnitude = np.abs(dft @ (seg * window))
            example.append(np.log(magnitude @ weights + 0.01))
        out.append(example)
    return np.array(out, np.float64).reshape(len(times), 96, 64)


# --------------------------------------------------------------------------- constants
def test_the_reference_constants():
    assert (L.WINDOW_SAMPLES, L.HOP_SAMPLES, L.FFT_LENGTH, L.NUM_BINS) == (400, 160, 512, 257)
    assert L.EXAMPLE_SAMPLES == 95 * 160 + 400 == 15600
    assert (L.NUM_BANDS, L.MEL_MIN_HZ, L.MEL_MAX_HZ, L.LOG_OFFSET) == (64, 125.0, 7500.0, 0.01)
    assert L.silence_value() == pytest.approx(SILENCE)
    assert L.example_span(3.0) == (3.0, 3.975)


def test_periodic_hann_and_htk_mel():
    w = L.periodic_hann(400)
    assert w[0] == 0.0 and w[200] == pytest.approx(1.0) and w[-1] > 0  # no closing zero
    assert not np.allclose(w, np.hanning(400))                         # not the symmetric one
    assert L.hertz_to_mel(700.0) == pytest.approx(1127.0 * math.log(2.0))
    assert L.mel_to_hertz(L.hertz_to_mel(1234.5)) == pytest.approx(1234.5)


def test_mel_matrix_shape_dc_and_edges():
    m = L.mel_matrix()
    assert m.shape == (257, 64)
    assert np.all(m[0] == 0)                          # DC excluded, as HTK
    hz = np.arange(257) * 8000.0 / 256
    assert np.all(m[hz <= 125.0] == 0) and np.all(m[hz >= 7500.0] == 0)
    assert np.all(m.max(axis=0) > 0.4)                # every band sees some bin
    # Each band's heaviest bin is the bin nearest its centre (hand-computed centres).
    centres_hz = np.array([_mel_to_hz(c) for c in _band_centres_mel()])
    assert np.all(np.abs(hz[m.argmax(axis=0)] - centres_hz) <= 8000.0 / 256)
    with pytest.raises(L.AudioError, match="Nyquist"):
        L.mel_matrix(upper_hz=9000.0)


# --------------------------------------------------------------------------- hand cases
@pytest.mark.parametrize("band", [3, 12, 25, 40, 63])
def test_a_pure_tone_lands_in_its_mel_band(band):
    freq = _mel_to_hz(_band_centres_mel()[band])
    ex = L.waveform_to_examples(_tone(freq), [0.0]).examples[0]
    energy = ex.mean(axis=0)
    assert int(energy.argmax()) == band
    # Far from the tone there is only the window's leakage.
    far = np.abs(np.arange(64) - band) > 6
    assert energy[band] - energy[far].max() > 4.0


def test_tone_magnitude_matches_the_hand_computed_peak():
    """A tone on FFT bin k with amplitude A has |X_k| = A * sum(hann) / 2 = 100 A
    (leakage from the negative frequency is < 1e-3 here); its log-mel in band i
    is log(sum_b |X_b| M[b, i] + 0.01), dominated by bins k-1..k+1."""
    k, amp = 96, 0.25                                    # 3000 Hz
    x = _tone(k * SR / 512, amplitude=amp, phase=0.0)
    frame = x[:400] * L.periodic_hann()
    mags = np.abs(np.fft.rfft(frame, 512))
    assert mags[k] == pytest.approx(100 * amp, rel=1e-3)
    m = L.mel_matrix()
    band = int(m[k].argmax())
    expected = math.log(float(mags @ m[:, band]) + 0.01)
    got = L.waveform_to_examples(x, [0.0]).examples[0, 0, band]
    assert got == pytest.approx(expected, abs=1e-5)
    assert got > math.log(100 * amp * m[k, band])       # at least the peak bin's share


def test_silence_is_log_of_the_offset_everywhere():
    r = L.waveform_to_examples(np.zeros(3 * SR, np.float32), L.second_times(3))
    assert r.examples.shape == (3, 96, 64) and r.examples.dtype == np.float32
    assert np.all(r.examples == np.float32(SILENCE))
    assert np.all(r.coverage == 1.0) and r.complete.all()


def test_input_is_not_clipped_magnitudes_scale_linearly():
    x = make_waveform(1.0, seed=5).astype(np.float64)
    a = L.waveform_to_examples(x, [0.0]).examples.astype(np.float64)
    b = L.waveform_to_examples(2.0 * x, [0.0]).examples.astype(np.float64)
    # exp(log(mel + 0.01)) - 0.01 doubles exactly when the input doubles.
    np.testing.assert_allclose(np.exp(b) - 0.01, 2.0 * (np.exp(a) - 0.01), rtol=2e-5,
                               atol=1e-6)


def test_full_scale_and_clipped_input():
    freq = _mel_to_hz(_band_centres_mel()[20])            # ~1000 Hz
    clean = _tone(freq, amplitude=1.0)                    # full scale
    clipped = np.clip(_tone(freq, amplitude=4.0), -1.0, 1.0)  # a hard-clipped tone
    square = np.sign(_tone(freq, amplitude=1.0))          # the full-scale extreme
    e_clean, e_clip, e_square = (L.waveform_to_examples(w, [0.0]).examples[0].mean(axis=0)
                                 for w in (clean, clipped, square))
    assert all(np.isfinite(e).all() for e in (e_clean, e_clip, e_square))
    third = int(np.argmin([abs(c - _hz_to_mel(3 * freq)) for c in _band_centres_mel()]))
    # Clipping makes odd harmonics: the 3rd harmonic's band gains energy.
    assert e_clip[third] > e_clean[third] + 3.0
    assert e_square[third] > e_clean[third] + 3.0
    # A full-scale square wave's 3rd harmonic is 1/3 of its (4/pi) fundamental.
    fundamental = int(e_square.argmax())
    assert fundamental == 20
    ratio = (np.exp(e_square[third]) - 0.01) / (np.exp(e_square[fundamental]) - 0.01)
    assert 0.2 < ratio < 0.6


# --------------------------------------------------------------------------- lengths
def test_exactly_f_seconds_gives_f_complete_examples():
    for seconds in (1, 4, 7):
        w = make_waveform(seconds, seed=seconds)
        r = L.waveform_to_examples(w, L.second_times(seconds))
        assert r.examples.shape == (seconds, 96, 64)
        assert np.all(r.coverage == 1.0)
        assert not np.any(r.examples == np.float32(SILENCE))


def test_a_short_last_second_is_zero_padded_and_reported():
    w = make_waveform(3.0, seed=1)[:2 * SR + 15000]      # the last example lacks 600 samples
    r = L.waveform_to_examples(w, L.second_times(3))
    np.testing.assert_allclose(r.coverage, [1.0, 1.0, 15000 / 15600])
    assert list(r.complete) == [True, True, False]
    padded = np.concatenate([w, np.zeros(600, np.float32)])
    np.testing.assert_array_equal(r.examples, L.waveform_to_examples(padded, L.second_times(3))
                                  .examples)


def test_missing_audio_is_silence_with_zero_coverage():
    for w in (None, np.zeros(0, np.float32)):
        r = L.waveform_to_examples(w, L.second_times(4))
        assert r.examples.shape == (4, 96, 64) and np.all(r.examples == np.float32(SILENCE))
        assert np.all(r.coverage == 0.0)
    # Audio that ends after 1.5 s: the last two seconds are missing.
    r = L.waveform_to_examples(make_waveform(1.5), L.second_times(4))
    np.testing.assert_allclose(r.coverage, [1.0, 8000 / 15600, 0.0, 0.0])
    assert np.all(r.examples[2:] == np.float32(SILENCE))


def test_shorter_than_one_window():
    w = make_waveform(1.0, seed=2)[:100]
    r = L.waveform_to_examples(w, [0.0])
    assert r.coverage[0] == pytest.approx(100 / 15600)
    assert np.any(r.examples[0, 0] != np.float32(SILENCE))       # the 100 samples count
    assert np.all(r.examples[0, 1:] == np.float32(SILENCE))      # later windows start past them
    assert L.log_mel_spectrogram(w).shape == (0, 64)


def test_no_times_no_examples():
    r = L.waveform_to_examples(make_waveform(2.0), [])
    assert r.examples.shape == (0, 96, 64) and r.coverage.shape == (0,) and len(r) == 0


def test_examples_are_rows_of_the_continuous_spectrogram_and_local():
    w = make_waveform(5.0, seed=4)
    spec = L.log_mel_spectrogram(w)
    assert spec.shape == (1 + (len(w) - 400) // 160, 64)
    r = L.waveform_to_examples(w, L.second_times(5))
    for k in range(5):
        # Second k = the 96 rows starting at 100 k (10 ms hops)...
        np.testing.assert_array_equal(r.examples[k], spec[100 * k:100 * k + 96])
        # ... and depends on its own 0.975 s only.
        alone = L.waveform_to_examples(w[SR * k:SR * k + 15600], [0.0]).examples[0]
        np.testing.assert_array_equal(r.examples[k], alone)


def test_fractional_times_start_at_their_sample():
    w = make_waveform(3.0, seed=6)
    r = L.waveform_to_examples(w, [0.5, 1.25])
    np.testing.assert_array_equal(r.examples[0], L.waveform_to_examples(w[8000:], [0]).examples[0])
    np.testing.assert_array_equal(r.examples[1], L.waveform_to_examples(w[20000:], [0]).examples[0])


def test_chunking_does_not_change_the_examples():
    w = make_waveform(9.0, seed=8)
    a = L.waveform_to_examples(w, L.second_times(9), chunk=2).examples
    b = L.waveform_to_examples(w, L.second_times(9)).examples
    np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------- agreement
def test_agrees_with_a_straightforward_implementation():
    w = make_waveform(3.5, seed=11)
    times = [0.0, 1.0, 2.0, 3.0]                           # the last one runs past the end
    ours = L.waveform_to_examples(w, times).examples
    plain = straightforward_examples(w.astype(np.float64), times)
    np.testing.assert_allclose(ours, plain, atol=1e-6, rtol=0)  # float32 rounding only


def test_agrees_with_tf_signal_front_end():
    """tf.signal's STFT / mel matrix (the TF-Hub VGGish's front end) in float32."""
    import tensorflow as tf
    w = make_waveform(2.0, seed=12)
    stft = tf.abs(tf.signal.stft(w, 400, 160, fft_length=512, window_fn=tf.signal.hann_window))
    mel = tf.signal.linear_to_mel_weight_matrix(64, 257, 16000, 125.0, 7500.0)
    theirs = tf.math.log(tf.matmul(stft, mel) + 0.01).numpy()
    ours = L.log_mel_spectrogram(w)
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, atol=2e-4)  # float32 STFT


def test_int16_pcm_is_scaled_as_the_reference_reads_wav():
    w = make_waveform(1.0, seed=9)
    pcm = np.round(w * 32767).astype(np.int16)
    a = L.waveform_to_examples(pcm, [0.0]).examples
    b = L.waveform_to_examples(pcm.astype(np.float64) / 32768.0, [0.0]).examples
    np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("kwargs, needle", [
    ({"waveform": np.zeros((2, 16000), np.float32)}, "mono"),
    ({"waveform": np.zeros(16000, np.int32)}, "dtype int32"),
    ({"waveform": np.array([0.0, np.nan] * 8000)}, "NaN or Inf"),
    ({"sample_rate": 44100}, "resample to 16 kHz"),
    ({"times": [-1.0]}, ">= 0"),
    ({"times": [[0.0]]}, "1-D"),
    ({"times": [float("nan")]}, "finite"),
])
def test_bad_input_says_what_to_pass(kwargs, needle):
    args = {"waveform": np.zeros(16000, np.float32), "times": [0.0], "sample_rate": SR, **kwargs}
    with pytest.raises(L.AudioError, match=needle):
        L.waveform_to_examples(args["waveform"], args["times"], args["sample_rate"])


def test_second_times():
    np.testing.assert_array_equal(L.second_times(3), [0.0, 1.0, 2.0])
    with pytest.raises(L.AudioError):
        L.second_times(-1)
