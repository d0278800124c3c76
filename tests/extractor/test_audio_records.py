"""Audio end to end: waveform -> examples -> VGGish -> released post-processing -> records."""
from __future__ import annotations

import numpy as np

from tests.extractor import audio_support as S
from yt8m.compression.audio import AudioCompression
from yt8m.extractor.audio_handler import VGGishModelHandler
from yt8m.extractor.logmel import second_times, waveform_to_examples
from yt8m.pipeline import schema


def _pca_file(tmp_path):
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((128, 128)))
    path = tmp_path / "vggish_pca_params.npz"
    # Scaled so that the random network's embeddings (~ +-10) land mostly inside [-2, 2].
    np.savez(path, pca_eigen_vectors=(q * 0.15).astype(np.float32),
             pca_means=rng.normal(0, 1, (128, 1)).astype(np.float32))
    return str(path)


def test_one_video_to_records_and_back(tmp_path):
    frames = 5
    waveform = S.make_waveform(4.5, seed=30)           # audio ends half way through second 4
    ex = waveform_to_examples(waveform, second_times(frames))
    assert len(ex) == frames and ex.coverage[-1] < 1.0
    model = S.random_model()
    handler = VGGishModelHandler("random", batch_size=4)
    raw = np.stack(handler.run_inference(list(ex.examples), model))
    assert raw.shape == (frames, 128)
    # Batch-independent: other batch sizes give the same bytes after encoding.
    raw2 = np.stack(VGGishModelHandler("random", batch_size=2).run_inference(list(ex.examples),
                                                                            model))
    comp = AudioCompression.released(_pca_file(tmp_path))
    q = comp.encode(raw)
    np.testing.assert_array_equal(comp.encode(raw2), q)
    assert q.dtype == np.uint8 and len(np.unique(q)) > 20   # not saturated at 0 / 255
    mean_audio = comp.mean(q)

    rgb_q = np.zeros((frames, schema.RGB_QUANTIZED_DIM), np.uint8)
    frame = schema.parse_frame_example(schema.encode_frame_example("vid", rgb_q, [3],
                                                                   quantized_audio=q))
    np.testing.assert_array_equal(frame.audio, q)
    assert frame.audio.shape == (frames, schema.AUDIO_DIM) == (frames, 128)
    video = schema.parse_video_example(schema.encode_video_example(
        "vid", np.zeros(schema.RGB_QUANTIZED_DIM), [3], mean_audio=mean_audio))
    # What the released readers compute from the frame bytes.
    np.testing.assert_allclose(video.mean_audio,
                               (q * (4.0 / 255) + (4.0 / 512 - 2.0)).mean(axis=0), atol=1e-6)
