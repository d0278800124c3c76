"""The bounded, deterministic sample of held-out frames and the report on it."""
import pickle

import numpy as np
import pytest

from yt8m.compression import PCAWhitening, Quantizer
from yt8m.compression.heldout import (FrameSampleCombiner, SampleKeysCombiner, frame_hashes,
                                      frames_in_sample)
from yt8m.compression.quality import quality_report, sample_report

D = 10


def _videos(rng, n_validate, n_test, frames=6):
    out = [(f"val{i:03d}", "validate", rng.standard_normal((frames, D)).astype(np.float32))
           for i in range(n_validate)]
    out += [(f"tst{i:03d}", "test", rng.standard_normal((frames, D)).astype(np.float32))
            for i in range(n_test)]
    out.append(("trn", "train", rng.standard_normal((frames, D)).astype(np.float32)))
    return out


def _sample(combiner, videos, order, pieces):
    accs = []
    for chunk in np.array_split(np.array(order, dtype=int), pieces):
        acc = combiner.create_accumulator()
        for i in chunk:
            combiner.add_input(acc, *videos[i])
        accs.append(pickle.loads(pickle.dumps(acc)))
    return combiner.extract_output(combiner.merge_accumulators(accs[::-1]))


@pytest.mark.parametrize("n_validate,n_test,max_frames,want_test", [
    (40, 10, 50, 0),          # enough validate frames: no test frame
    (5, 20, 50, 20),          # 30 validate frames, the rest from test
    (0, 10, 25, 25),          # no validate split: test only
    (3, 2, 100, 12),          # fewer held-out frames than max_frames: all of them
])
def test_sample_is_the_same_for_any_order_and_partition(rng, n_validate, n_test, max_frames,
                                                        want_test):
    videos = _videos(rng, n_validate, n_test)
    combiner = FrameSampleCombiner(max_frames)
    ref = _sample(combiner, videos, range(len(videos)), 1)
    order_rng = np.random.default_rng(1)
    for pieces in (1, 3, 9):
        got = _sample(combiner, videos, order_rng.permutation(len(videos)), pieces)
        assert got.keys == ref.keys and np.array_equal(got.frames, ref.frames)
        assert got.seen == ref.seen == {"validate": 6 * n_validate, "test": 6 * n_test}
    assert ref.n_frames == min(max_frames, 6 * (n_validate + n_test))
    assert sum(k[0] == "test" for k in ref.keys) == want_test
    assert all(k[0] != "train" for k in ref.keys)
    # The frames are the videos' own (float16, as cached), in key order.
    by_id = {v: f for v, _, f in videos}
    for (split, vid, i), frame in zip(ref.keys, ref.frames):
        assert np.array_equal(frame, by_id[vid][i].astype(np.float16))


def _two_pass(max_frames, videos, order, pieces):
    """The runner's way: keys from frame counts, then only the frames the cut keeps."""
    kc = SampleKeysCombiner(max_frames)
    accs = []
    for chunk in np.array_split(np.array(order, dtype=int), pieces):
        acc = kc.create_accumulator()
        for i in chunk:
            vid, split, f = videos[i]
            kc.add_input(acc, vid, split, len(f))
        accs.append(pickle.loads(pickle.dumps(acc)))
    cut = kc.extract_output(kc.merge_accumulators(accs[::-1]))
    sc = FrameSampleCombiner(max_frames)
    accs, picked = [], 0
    for chunk in np.array_split(np.array(order, dtype=int)[::-1], pieces):
        acc = sc.create_accumulator()
        for i in chunk:
            vid, split, f = videos[i]
            idx = frames_in_sample(vid, split, len(f), cut)
            if idx.size:
                picked += idx.size
                sc.add_input(acc, vid, split, f[idx], idx)
        accs.append(pickle.loads(pickle.dumps(acc)))
    return cut, sc.extract_output(sc.merge_accumulators(accs)), picked


@pytest.mark.parametrize("n_validate,n_test,max_frames", [
    (40, 10, 50), (5, 20, 50), (0, 10, 25), (3, 2, 100), (0, 0, 10), (30, 0, 1),
])
def test_two_pass_sample_equals_the_one_pass_sample_and_reads_only_its_frames(
        rng, n_validate, n_test, max_frames):
    videos = _videos(rng, n_validate, n_test)
    one = _sample(FrameSampleCombiner(max_frames), videos, range(len(videos)), 1)
    order_rng = np.random.default_rng(3)
    for pieces in (1, 4):
        cut, two, picked = _two_pass(max_frames, videos, order_rng.permutation(len(videos)),
                                     pieces)
        assert two.keys == one.keys and np.array_equal(two.frames, one.frames)
        # The second pass looked at exactly the sampled frames, never more than max_frames.
        assert picked == one.n_frames <= max_frames
        assert cut.seen == one.seen == {"validate": 6 * n_validate, "test": 6 * n_test}


def test_sample_keys_partial_results_stay_small_whatever_the_data():
    kc = SampleKeysCombiner(64)
    acc = kc.create_accumulator()
    for i in range(3000):
        kc.add_input(acc, f"v{i}", "validate", 200)
    acc = kc.compact(acc)
    assert len(acc.keys) == 64 and not acc.pending and acc.seen == {"validate": 600000}
    assert len(pickle.dumps(acc)) < 64 * 200     # keys only: no frames
    with pytest.raises(ValueError, match="max_frames"):
        SampleKeysCombiner(0)


def test_sample_spreads_over_videos_and_hashes_are_stable():
    h = frame_hashes("abc", 4)
    assert h.dtype == np.uint64 and len(set(h.tolist())) == 4
    assert np.array_equal(h, frame_hashes(b"abc", 4))
    assert not np.array_equal(frame_hashes("abd", 4), h)
    rng = np.random.default_rng(2)
    videos = _videos(rng, 200, 0, frames=10)
    sample = _sample(FrameSampleCombiner(100), videos, range(len(videos)), 1)
    # 100 of 2,000 frames by hash: many videos, not the first ten by id.
    assert len({vid for _, vid, _ in sample.keys}) > 60


def test_sample_report_matches_the_report_on_the_sampled_frames(rng):
    videos = _videos(rng, 8, 8)
    train = rng.standard_normal((400, D))
    pca = PCAWhitening.fit([train], n_components=6)
    lloyd = Quantizer.fit([pca.transform(train.astype(np.float32))], bits=8)
    sample = _sample(FrameSampleCombiner(30), videos, range(len(videos)), 1)
    report = sample_report(sample, pca, lloyd)
    want = quality_report(sample.frames.astype(np.float32), pca, lloyd)
    assert {k: v for k, v in report.items() if k != "held_out"} == want
    assert report["held_out"]["frames_measured"] == 30
    assert report["held_out"]["frames_seen"] == {"validate": 48, "test": 48}
    empty = FrameSampleCombiner(30).extract_output(FrameSampleCombiner(30).create_accumulator())
    assert sample_report(empty, pca, lloyd)["held_out_frames"] == 0
    assert "nothing was fit" in sample_report(sample, None, None)["note"]


def test_bad_frames_and_arguments_are_named():
    combiner = FrameSampleCombiner(4)
    bad = np.zeros((3, D))
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"video 'v9'.*frame\(s\) \[2\].*NaN/Inf"):
        combiner.add_input(combiner.create_accumulator(), "v9", "validate", bad)
    for kwargs, match in [({"max_frames": 0}, "max_frames"),
                          ({"splits": ()}, "splits"),
                          ({"splits": ("test", "test")}, "splits")]:
        with pytest.raises(ValueError, match=match):
            FrameSampleCombiner(**kwargs)
