"""Video thumbnails beside the feature cache: layout, JPEG encoding, writer and reader.

A build decodes every video once; while it does, a few small upright RGB
frames (aspect ratio kept) are cheap to keep, and the dataset explorer
(``yt8m.explorer``) shows them: an entity's grid of videos, a video's frames
strip, the human rating tasks. This module is the one place that knows where
they live and how they are stored.

Layout: one JPEG per video,

    <cache_dir>/thumbnails/<hh>/<safe_id>.jpg

``cache_dir`` is the build's feature cache (``OUT/cache``, or the one a
``resplit`` reads, named by ``dataset_info.json``'s ``cache_dir``), so a
resplit build shows the thumbnails of the build whose cache it reads. ``hh``
and ``safe_id`` are the feature cache's (``pipeline.cache``): two hex digits
of SHA-256(video_id), and the id itself when it is file-name safe, else its
hash. Thumbnails depend on the video file only, not on the model, so the name
carries no model fingerprint; a video decoded again (its file changed) gets
its thumbnails replaced by the same rename that publishes them.

Format: the thumbnails of a video side by side in one JPEG strip (each
``width x height``, all the same size), with a JPEG comment holding JSON:
``{"format": "yt8m-thumbnails/1", "video_id", "n", "width", "height",
"times"}``. One file is one atomic write and one read, whatever ``n``; the
reader crops thumbnail ``k`` out of it. Encoding is deterministic (Pillow,
fixed quality, no optimisation passes), so a retried bundle rewrites the same
bytes.

Every write goes through ``yt8m.fs.atomic_write`` (a temporary name, then a
rename; the build passes its ``OUT/.tmp/cache`` as ``tmp_dir``), so a kill
never leaves half a JPEG. A build without thumbnails (older builds) simply has
no such folder: readers return None and the explorer shows a placeholder.

``backfill(data_dir)`` writes the missing thumbnails of an existing build by
decoding its videos again (the decoder's own thumbnails, ``sample_frames(...,
thumbnails=n)``), for builds made before the build kept them.
"""
from __future__ import annotations

import dataclasses
import io
import json
from typing import Iterable, Optional, Sequence

import numpy as np

from yt8m import fs
from yt8m.pipeline.cache import _bucket, safe_id

THUMBNAILS_DIR = "thumbnails"
FORMAT = "yt8m-thumbnails/1"
# Each thumbnail fits this box (aspect kept, never enlarged): 192x108 for 16:9,
# 192x144 for 4:3, 81x144 for a portrait 9:16 phone video.
MAX_WIDTH = 192
MAX_HEIGHT = 144
DEFAULT_COUNT = 4
MAX_COUNT = 16
JPEG_QUALITY = 82


class ThumbnailError(ValueError):
    """A thumbnail file exists but cannot be read (corrupt, or for another video)."""


def thumbnails_dir(cache_dir: str) -> str:
    return fs.join(cache_dir, THUMBNAILS_DIR)


def thumbnail_path(cache_dir: str, video_id: str) -> str:
    """Where the thumbnails of ``video_id`` live for the feature cache ``cache_dir``."""
    if not video_id:
        raise ValueError("thumbnail_path needs a video id")
    return fs.join(cache_dir, THUMBNAILS_DIR, _bucket(video_id), f"{safe_id(video_id)}.jpg")


def fit_box(width: int, height: int, max_width: int = MAX_WIDTH,
            max_height: int = MAX_HEIGHT) -> tuple[int, int]:
    """The size of a ``width x height`` image scaled into the box, aspect kept, never enlarged."""
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    scale = min(1.0, max_width / width, max_height / height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def pick(times: Sequence[float], n: int = DEFAULT_COUNT) -> list[int]:
    """Indices of ``n`` samples spread evenly over a video (the centre of each n-th).

    ``times`` are the sample times in order. Fewer samples than ``n``: all of them.
    """
    count = len(times)
    if count <= n:
        return list(range(count))
    return sorted({min(count - 1, int((k + 0.5) * count / n)) for k in range(n)})


def _as_rgb(image) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"a thumbnail must be an (H, W, 3) uint8 RGB array, got "
                         f"{arr.dtype} {arr.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"a thumbnail must not be empty, got {arr.shape}")
    return arr


def shrink(image, max_width: int = MAX_WIDTH, max_height: int = MAX_HEIGHT) -> np.ndarray:
    """``image`` (H, W, 3) uint8 scaled into the box (aspect kept, never enlarged)."""
    from PIL import Image
    arr = _as_rgb(image)
    w, h = fit_box(arr.shape[1], arr.shape[0], max_width, max_height)
    if (w, h) == (arr.shape[1], arr.shape[0]):
        return arr
    return np.asarray(Image.fromarray(arr).resize((w, h), Image.Resampling.LANCZOS))


def encode_strip(video_id: str, thumbnails: Sequence, times: Optional[Sequence[float]] = None,
                 quality: int = JPEG_QUALITY) -> bytes:
    """The JPEG strip of ``thumbnails`` (each fitted into the box) with its JSON comment.

    All thumbnails take the size of the first one (a video's frames share one
    size; a differing one is scaled to it).
    """
    from PIL import Image
    if not thumbnails:
        raise ValueError(f"no thumbnails to encode for {video_id!r}")
    if len(thumbnails) > MAX_COUNT:
        raise ValueError(f"{len(thumbnails)} thumbnails for {video_id!r}; at most {MAX_COUNT}")
    if times is not None and len(times) != len(thumbnails):
        raise ValueError(f"{len(times)} times for {len(thumbnails)} thumbnails of {video_id!r}")
    first = shrink(thumbnails[0])
    h, w = first.shape[:2]
    tiles = [first]
    for t in thumbnails[1:]:
        arr = _as_rgb(t)
        if arr.shape[:2] != (h, w):
            arr = np.asarray(Image.fromarray(arr).resize((w, h), Image.Resampling.LANCZOS))
        tiles.append(arr)
    strip = np.concatenate(tiles, axis=1)
    meta = {"format": FORMAT, "video_id": video_id, "n": len(tiles), "width": int(w),
            "height": int(h),
            "times": None if times is None else [round(float(x), 3) for x in times]}
    buf = io.BytesIO()
    Image.fromarray(strip).save(buf, format="JPEG", quality=int(quality),
                                comment=json.dumps(meta, sort_keys=True).encode("utf-8"))
    return buf.getvalue()


def write_thumbnails(cache_dir: str, video_id: str, thumbnails: Sequence,
                     times: Optional[Sequence[float]] = None,
                     tmp_dir: Optional[str] = None) -> Optional[str]:
    """Publish the thumbnails of ``video_id`` atomically; returns the path (None: nothing to write).

    ``thumbnails``: (H, W, 3) uint8 upright RGB arrays, in time order, as the
    decoder returns them; ``times`` their times in seconds (optional).
    ``tmp_dir``: where the temporary file goes (a build passes OUT/.tmp/cache).
    """
    if not thumbnails:
        return None
    data = encode_strip(video_id, list(thumbnails), times)
    return fs.atomic_write(thumbnail_path(cache_dir, video_id), data, tmp_dir=tmp_dir)


@dataclasses.dataclass(frozen=True)
class Strip:
    """The thumbnails of one video as stored: the JPEG and what its comment says."""
    video_id: str
    jpeg: bytes
    n: int
    width: int
    height: int
    times: Optional[tuple] = None

    def crop(self, k: int, quality: int = JPEG_QUALITY) -> bytes:
        """Thumbnail ``k`` (0-based) as a JPEG of its own."""
        from PIL import Image
        if not 0 <= k < self.n:
            raise IndexError(f"thumbnail {k} of {self.video_id!r}: it has {self.n}")
        with Image.open(io.BytesIO(self.jpeg)) as im:
            tile = im.crop((k * self.width, 0, (k + 1) * self.width, self.height))
            buf = io.BytesIO()
            tile.convert("RGB").save(buf, format="JPEG", quality=int(quality))
        return buf.getvalue()

    def arrays(self) -> list[np.ndarray]:
        """Every thumbnail as an (H, W, 3) uint8 array (decoded: JPEG is lossy)."""
        from PIL import Image
        with Image.open(io.BytesIO(self.jpeg)) as im:
            arr = np.asarray(im.convert("RGB"))
        return [arr[:, k * self.width:(k + 1) * self.width] for k in range(self.n)]


def parse_strip(data: bytes, video_id: Optional[str] = None) -> Strip:
    """The ``Strip`` in ``data``; ThumbnailError if it is not one (of ``video_id``)."""
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt, size = im.format, im.size
            meta = json.loads(im.info.get("comment", b"{}") or b"{}")
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise ThumbnailError(f"unreadable thumbnail file ({type(e).__name__}: {e})") from e
    if fmt != "JPEG" or meta.get("format") != FORMAT:
        raise ThumbnailError(f"not a {FORMAT} JPEG (format {fmt}, comment {meta!r:.80})")
    if video_id is not None and meta.get("video_id") != video_id:
        raise ThumbnailError(f"thumbnails are of video {meta.get('video_id')!r}, not {video_id!r}")
    n, w, h = int(meta["n"]), int(meta["width"]), int(meta["height"])
    if n < 1 or size != (n * w, h):
        raise ThumbnailError(f"strip of {size[0]}x{size[1]} does not hold {n} thumbnails of "
                             f"{w}x{h}")
    times = meta.get("times")
    return Strip(video_id=meta["video_id"], jpeg=data, n=n, width=w, height=h,
                 times=None if times is None else tuple(times))


def read_strip(cache_dir: str, video_id: str) -> Optional[Strip]:
    """The stored thumbnails of ``video_id``, or None when it has none.

    Raises ThumbnailError for a file that exists but is not a valid strip of
    this video (the explorer shows its placeholder and logs it).
    """
    path = thumbnail_path(cache_dir, video_id)
    try:
        data = fs.read_bytes(path)
    except FileNotFoundError:
        return None
    return parse_strip(data, video_id)


def has_thumbnails(cache_dir: str, video_id: str) -> bool:
    return fs.exists(thumbnail_path(cache_dir, video_id))


# --------------------------------------------------------------------------- backfill

def thumbnails_of_video(uri: str, n: int = DEFAULT_COUNT, duration_s: Optional[float] = None,
                        max_seconds: float = 360.0,
                        timeout_s: Optional[float] = 120.0) -> tuple[list[np.ndarray], list[float]]:
    """The decoder's ``n`` upright thumbnails of ``uri`` (aspect kept), fitted into the box.

    ``extractor.decode.sample_frames(..., thumbnails=n)`` picks them from evenly
    spread samples of the frames it decodes anyway; samples are taken at about
    ``2 n`` per (known) duration, and the sampled frames themselves are kept
    tiny (they are not needed here). Raises ``extractor.decode.DecodeError`` for
    a video that cannot be decoded.
    """
    from yt8m.extractor.decode import sample_frames
    span = min(float(duration_s), max_seconds) if duration_s and duration_s > 0 else None
    # Twice the needed rate, so short or mis-declared videos still give n samples.
    fps = 1.0 if span is None else min(1.0, max(2.0 * n / span, 1.0 / 60.0))
    sampled = sample_frames(uri, fps=fps, max_seconds=max_seconds, size=8, timeout_s=timeout_s,
                            thumbnails=n, thumbnail_size=max(MAX_WIDTH, MAX_HEIGHT))
    thumbs = sampled.thumbnails
    if thumbs is None or len(thumbs) == 0:
        return [], []
    return ([shrink(img) for img in thumbs.images],
            [float(t) for t in np.asarray(thumbs.times)])


def _cache_dir_of(data_dir: str) -> str:
    info_path = fs.join(data_dir, "dataset_info.json")
    if fs.exists(info_path):
        cache_dir = fs.read_json(info_path).get("cache_dir")
        if cache_dir and fs.exists(cache_dir):
            return cache_dir
    return fs.join(data_dir, "cache")


def _written_videos(data_dir: str) -> dict[str, None]:
    """Video ids of ``splits.csv`` that the build did not list as failed."""
    import csv
    failed = set()
    failures = fs.join(data_dir, "failures.jsonl")
    if fs.exists(failures):
        for line in fs.read_text(failures).splitlines():
            if line.strip():
                failed.add(json.loads(line).get("video_id"))
    rows = csv.DictReader(io.StringIO(fs.read_text(fs.join(data_dir, "splits.csv"))))
    return {r["video_id"]: None for r in rows if r["video_id"] not in failed}


def backfill(data_dir: str, n: int = DEFAULT_COUNT, video_ids: Optional[Iterable[str]] = None,
             overwrite: bool = False, log=None) -> dict:
    """Write the missing thumbnails of the build in ``data_dir`` by decoding its videos.

    The URIs come from the build's private copy of its manifest
    (``private/inputs/``). Returns counts: ``written``, ``present`` (already
    had thumbnails), ``failed`` (could not be decoded now; listed in
    ``errors``), ``unknown`` (not in the manifest).
    """
    from yt8m.extractor.decode import DecodeError
    from yt8m.vocab.manifest import iter_manifest
    inputs = fs.join(data_dir, "private", "inputs")
    manifests = [m.path for m in fs.match(fs.join(inputs, "manifest.*"))]
    if not manifests:
        raise FileNotFoundError(f"{data_dir} has no private/inputs/manifest.* (a build keeps a "
                                f"copy of its manifest there): thumbnails need the video URIs")
    wanted = dict.fromkeys(video_ids) if video_ids is not None else _written_videos(data_dir)
    cache_dir = _cache_dir_of(data_dir)
    counts = {"written": 0, "present": 0, "failed": 0, "unknown": 0, "errors": {}}
    found = set()
    for row in iter_manifest(manifests[0], require_metadata=False):
        vid = row.video_id
        if vid is None or vid not in wanted or vid in found or row.error:
            continue
        found.add(vid)
        if not overwrite and has_thumbnails(cache_dir, vid):
            counts["present"] += 1
            continue
        try:
            thumbs, times = thumbnails_of_video(row.uri, n, row.duration_s)
        except DecodeError as e:
            counts["failed"] += 1
            counts["errors"][vid] = str(e)
            continue
        # Each file is staged beside its final name (outside a build, OUT/.tmp is not ours).
        if write_thumbnails(cache_dir, vid, thumbs, times):
            counts["written"] += 1
            if log:
                log(f"thumbnails: {vid} ({len(thumbs)})")
    counts["unknown"] = len(set(wanted) - found)
    return counts


__all__ = ["THUMBNAILS_DIR", "FORMAT", "MAX_WIDTH", "MAX_HEIGHT", "DEFAULT_COUNT",
           "ThumbnailError", "Strip", "thumbnails_dir", "thumbnail_path", "fit_box", "pick",
           "shrink", "encode_strip", "write_thumbnails", "parse_strip", "read_strip",
           "has_thumbnails", "thumbnails_of_video", "backfill"]
