"""Thumbnails: small upright RGB pictures of evenly spread samples, from the
very decoded frames the samples use (no second decode, no seek)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from yt8m.extractor.decode import DecodeError, iter_frames, sample_frames
from tests.media import timecodes


def expected_indices(samples: int, count: int) -> list[int]:
    """The rule as docs/decoding.md states it, computed independently: among
    the multiples of the smallest power of two s with at most 2 * count
    multiples below F, the one nearest the middle of each of count equal parts."""
    if samples <= count:
        return list(range(samples))
    s = 1
    while math.ceil(samples / s) > 2 * count:
        s *= 2
    kept = list(range(0, samples, s))
    if len(kept) <= count:
        return kept
    out = []
    for j in range(count):
        middle = (j + 0.5) * samples / count
        best = min(kept, key=lambda k: (abs(k - middle), k))
        if best not in out:
            out.append(best)
    return out


@pytest.mark.parametrize("seconds,count", [(20, 4), (7, 3), (3, 5), (40, 6), (1, 1)])
def test_which_samples(video_factory, seconds, count):
    video = video_factory(f"t{seconds}.mkv", width=128, height=96, fps=5, duration_s=seconds, gop=10)
    result = sample_frames(video.path, size=64, thumbnails=count, thumbnail_size=96)
    thumbs = result.thumbnails
    want = expected_indices(len(result), count)
    assert thumbs.sample_indices.tolist() == want
    np.testing.assert_allclose(thumbs.times, result.times[want])
    # The same decoded frame as the sample: same source frame (timecode).
    assert timecodes(thumbs.images) == [timecodes(result.frames[k:k + 1])[0] for k in want]
    if seconds >= 20:   # evenly spread: every gap within a factor of the ideal one
        gaps = np.diff(thumbs.sample_indices)
        assert gaps.min() >= 0.5 * len(result) / count and gaps.max() <= 1.5 * len(result) / count


def test_twenty_samples_four_thumbnails():
    assert expected_indices(20, 4) == [4, 8, 12, 16]


@pytest.mark.parametrize("width,height,size,shape", [
    (160, 90, 64, (36, 64)),      # 16:9
    (90, 160, 64, (64, 36)),      # portrait
    (96, 96, 50, (50, 50)),
    (33, 17, 40, (21, 40)),       # odd sizes
])
def test_aspect_ratio_is_kept(video_factory, width, height, size, shape):
    video = video_factory(f"a{width}x{height}.mkv", width=width, height=height, fps=5, duration_s=3)
    result = sample_frames(video.path, size=32, thumbnails=2, thumbnail_size=size)
    assert result.thumbnails.images.shape[1:] == (*shape, 3)
    assert result.thumbnails.images.dtype == np.uint8


@pytest.mark.parametrize("rotation,name", [(90, "r90.mp4"), (180, "r180.mkv"), (270, "r270.mov")])
def test_rotation_is_applied(video_factory, rotation, name):
    # Displayed 160x96 (stored 96x160 for 90/270): thumbnails are upright and landscape.
    video = video_factory(name, width=160, height=96, fps=5, duration_s=4, rotation=rotation)
    result = sample_frames(video.path, size=64, thumbnails=3, thumbnail_size=120)
    assert result.thumbnails.images.shape[1:] == (72, 120, 3)
    # The timecode band only reads on an upright picture.
    assert timecodes(result.thumbnails.images) == [5 * k for k in result.thumbnails.sample_indices]


def test_no_second_decode(video_factory):
    video = video_factory("cost.mp4", width=128, height=96, fps=25, duration_s=8)
    plain = sample_frames(video.path, size=32)
    with_thumbs = sample_frames(video.path, size=32, thumbnails=4)
    assert with_thumbs.stats.frames_decoded == plain.stats.frames_decoded
    assert with_thumbs.stats.packets_decoded == plain.stats.packets_decoded
    np.testing.assert_array_equal(with_thumbs.frames, plain.frames)
    assert plain.thumbnails is None


def test_streaming_form_and_skip_off(video_factory):
    video = video_factory("stream.mkv", width=128, height=96, fps=10, duration_s=9, gop=20)
    with iter_frames(video.path, size=32, thumbnails=3, thumbnail_size=64) as stream:
        frames = list(stream)
    assert len(frames) == 9 and stream.thumbnails.sample_indices.tolist() == expected_indices(9, 3)
    full = sample_frames(video.path, size=32, thumbnails=3, thumbnail_size=64, skip_packets=False)
    np.testing.assert_array_equal(full.thumbnails.images, stream.thumbnails.images)


def test_bad_thumbnail_arguments(video_factory):
    video = video_factory("args.mp4", fps=5, duration_s=1)
    for kwargs in ({"thumbnails": -1}, {"thumbnails": 1.5}, {"thumbnail_size": 0}):
        with pytest.raises(DecodeError, match="thumbnail") as e:
            sample_frames(video.path, **kwargs)
        assert e.value.kind == "bad_argument"
