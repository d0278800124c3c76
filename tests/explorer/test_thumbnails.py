"""pipeline/thumbnails.py: layout beside the feature cache, JPEG strips, atomic writes, reader."""
from __future__ import annotations

import csv
import glob
import os

import numpy as np
import pytest

from yt8m.pipeline import thumbnails as TH
from yt8m.pipeline.cache import safe_id


def frames(n=3, h=90, w=160):
    return [np.full((h, w, 3), (40 * k, 255 - 40 * k, 90), np.uint8) for k in range(n)]


def test_layout_is_beside_the_feature_cache_and_shares_its_buckets(tmp_path):
    path = TH.thumbnail_path(str(tmp_path / "cache"), "abc")
    rel = os.path.relpath(path, tmp_path / "cache").split(os.sep)
    assert rel[0] == "thumbnails" and len(rel[1]) == 2 and rel[2] == "abc.jpg"
    # Ids unsafe in file names are hashed as in the feature cache.
    weird = TH.thumbnail_path(str(tmp_path), "../etc/passwd")
    assert os.path.basename(weird) == safe_id("../etc/passwd") + ".jpg"
    assert os.path.dirname(os.path.dirname(weird)) == str(tmp_path / "thumbnails")


def test_fit_box_keeps_the_aspect_and_never_enlarges():
    assert TH.fit_box(1920, 1080) == (192, 108)
    assert TH.fit_box(640, 480) == (192, 144)
    assert TH.fit_box(1080, 1920) == (81, 144)       # upright phone video
    assert TH.fit_box(100, 50) == (100, 50)
    with pytest.raises(ValueError):
        TH.fit_box(0, 10)


def test_pick_spreads_samples_over_the_video():
    assert TH.pick([0, 1, 2], 4) == [0, 1, 2]
    assert TH.pick(list(range(100)), 4) == [12, 37, 62, 87]
    assert TH.pick([], 4) == []


def test_write_read_round_trip_is_atomic_and_deterministic(tmp_path):
    cache = str(tmp_path / "cache")
    thumbs = frames(3, 360, 640)        # shrunk into the box on write
    path = TH.write_thumbnails(cache, "v1", thumbs, [0.0, 1.5, 3.0])
    first = open(path, "rb").read()
    strip = TH.read_strip(cache, "v1")
    assert (strip.n, strip.width, strip.height, strip.times) == (3, 192, 108, (0.0, 1.5, 3.0))
    arrays = strip.arrays()
    assert [a.shape for a in arrays] == [(108, 192, 3)] * 3
    # JPEG is lossy, but each tile is its own colour.
    for k, a in enumerate(arrays):
        assert np.abs(a.astype(int).mean(axis=(0, 1)) - [40 * k, 255 - 40 * k, 90]).max() < 6
    from PIL import Image
    import io
    with Image.open(io.BytesIO(strip.crop(2))) as im:
        assert im.size == (192, 108)
    # Rewriting (a retried bundle) gives the same bytes and leaves no temporary file.
    TH.write_thumbnails(cache, "v1", thumbs, [0.0, 1.5, 3.0])
    assert open(path, "rb").read() == first
    assert not glob.glob(os.path.join(cache, "**", "*.part"), recursive=True)
    with pytest.raises(IndexError):
        strip.crop(3)


def test_missing_corrupt_and_foreign_files(tmp_path):
    cache = str(tmp_path / "cache")
    assert TH.read_strip(cache, "nothing") is None
    assert not TH.has_thumbnails(cache, "nothing")
    path = TH.thumbnail_path(cache, "bad")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, "wb").write(b"not a jpeg")
    with pytest.raises(TH.ThumbnailError):
        TH.read_strip(cache, "bad")
    # A strip of another video under this name is refused, not shown.
    data = TH.encode_strip("other", frames(1))
    path = TH.thumbnail_path(cache, "mine")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, "wb").write(data)
    with pytest.raises(TH.ThumbnailError, match="other"):
        TH.read_strip(cache, "mine")


def test_bad_thumbnails_are_refused(tmp_path):
    assert TH.write_thumbnails(str(tmp_path), "v", []) is None
    with pytest.raises(ValueError, match="uint8"):
        TH.encode_strip("v", [np.zeros((10, 10, 3), np.float32)])
    with pytest.raises(ValueError, match="times"):
        TH.encode_strip("v", frames(2), [0.0])
    with pytest.raises(ValueError, match="at most"):
        TH.encode_strip("v", frames(TH.MAX_COUNT + 1, 8, 8))
    # A differently sized frame is scaled to the first one's size.
    strip = TH.parse_strip(TH.encode_strip("v", [frames(1)[0], np.zeros((30, 30, 3), np.uint8)]))
    assert (strip.n, strip.width, strip.height) == (2, 160, 90)


def test_backfill_decodes_upright_frames_with_the_aspect_kept(tmp_path, video_factory):
    out = tmp_path / "out"
    (out / "private" / "inputs").mkdir(parents=True)
    wide = video_factory("wide.mp4", width=128, height=64, duration_s=3.0, fps=5.0)
    tall = video_factory("tall.mp4", width=48, height=96, duration_s=2.0, fps=5.0)
    with open(out / "private" / "inputs" / "manifest.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["video_id", "uri", "views", "duration_s", "entities"])
        w.writerow(["wide", wide.path, 5000, 3.0, "/m/a"])
        w.writerow(["tall", tall.path, 5000, "", "/m/a"])
        w.writerow(["gone", str(tmp_path / "gone.mp4"), 5000, 3.0, "/m/a"])
    with open(out / "splits.csv", "w", newline="") as fh:
        fh.write("video_id,split,labels\nwide,train,0\ntall,validate,0\ngone,test,\n")
    counts = TH.backfill(str(out))
    assert (counts["written"], counts["failed"], counts["present"]) == (2, 1, 0)
    assert "gone" in counts["errors"]
    w_strip = TH.read_strip(str(out / "cache"), "wide")
    t_strip = TH.read_strip(str(out / "cache"), "tall")
    # The decoder's thumbnails: upright, the aspect kept, fitted into the box.
    assert w_strip.width == 2 * w_strip.height and w_strip.n == 3
    assert 2 * t_strip.width == t_strip.height and t_strip.n == 2
    for st in (w_strip, t_strip):
        assert st.width <= TH.MAX_WIDTH and st.height <= TH.MAX_HEIGHT
    assert list(w_strip.times) == sorted(w_strip.times)
    # A second run finds them and decodes nothing.
    again = TH.backfill(str(out))
    assert (again["written"], again["present"]) == (0, 2)
    assert not (out / ".tmp").exists()


def test_backfill_needs_the_manifest_copy(tmp_path):
    (tmp_path / "splits.csv").write_text("video_id,split,labels\n")
    with pytest.raises(FileNotFoundError, match="private/inputs"):
        TH.backfill(str(tmp_path))
