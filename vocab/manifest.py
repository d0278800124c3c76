"""Reading the videos manifest (CSV or JSONL) row by row, never crashing.

Columns: ``video_id,uri,views,duration_s,entities`` (``entities`` is
``;``-separated kg_ids; ``duration_s`` may be empty). ``extract`` needs only
``video_id,uri``; the other columns are optional there (``require_metadata``
off). A row that cannot be parsed comes back with ``error`` set and its line
number, so that the caller accounts for it (``malformed_row``) instead of
stopping the build.

Files are opened through Beam's ``FileSystems``, so ``gs://`` and other remote
URIs work wherever Beam has the filesystem installed.
"""
from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from typing import Iterator, Optional

from apache_beam.io.filesystems import FileSystems

MANIFEST_COLUMNS = ("video_id", "uri", "views", "duration_s", "entities")


@dataclass(frozen=True)
class ManifestRow:
    line: int                                # 1-based line number in the file
    video_id: Optional[str]
    uri: Optional[str] = None
    views: Optional[int] = None
    duration_s: Optional[float] = None
    entities: tuple[str, ...] = ()
    labels: Optional[tuple[int, ...]] = None  # integer labels, if the manifest gives them
    error: Optional[str] = None              # set for a malformed row
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def ok(self) -> bool:
        return self.error is None


def _split_list(value) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, (list, tuple)):
        return tuple(str(v).strip() for v in value if str(v).strip())
    return tuple(p.strip() for p in str(value).split(";") if p.strip())


def row_from_mapping(rec: dict, line: int, require_metadata: bool = True) -> ManifestRow:
    """Validate one record (a CSV row or JSONL object) into a ManifestRow."""
    vid = rec.get("video_id")
    vid = None if vid is None else str(vid).strip()
    if not vid:
        return ManifestRow(line=line, video_id=None, error="missing video_id")
    uri = rec.get("uri")
    uri = None if uri is None else str(uri).strip() or None
    views = duration = None
    errors = []
    raw_views = rec.get("views")
    if raw_views not in (None, ""):
        try:
            fviews = float(str(raw_views).strip())
            if fviews != int(fviews) or fviews < 0:
                raise ValueError
            views = int(fviews)
        except (ValueError, OverflowError):
            errors.append(f"views is not a non-negative integer: {raw_views!r}")
    elif require_metadata:
        errors.append("views is missing")
    raw_dur = rec.get("duration_s")
    if raw_dur not in (None, ""):
        try:
            duration = float(str(raw_dur).strip())
            if not (duration >= 0) or duration == float("inf"):
                raise ValueError
        except ValueError:
            errors.append(f"duration_s is not a non-negative number: {raw_dur!r}")
            duration = None
    labels = None
    raw_labels = rec.get("labels")
    if raw_labels not in (None, ""):
        try:
            labels = tuple(int(x) for x in _split_list(raw_labels))
        except ValueError:
            errors.append(f"labels are not integers: {raw_labels!r}")
    if not uri and not require_metadata:
        errors.append("uri is missing")
    extra = {k: v for k, v in rec.items()
             if k not in MANIFEST_COLUMNS and k != "labels" and k is not None}
    return ManifestRow(line=line, video_id=vid, uri=uri, views=views, duration_s=duration,
                       entities=_split_list(rec.get("entities")), labels=labels,
                       error="; ".join(errors) or None, extra=extra)


def _open_text(path: str) -> io.TextIOBase:
    raw = FileSystems.open(path)
    # Bad bytes must not crash the reader: decode with surrogateescape and
    # flag the rows that carry them.
    return io.TextIOWrapper(raw, encoding="utf-8", errors="surrogateescape", newline="")


# Bytes that are not UTF-8 decode (surrogateescape) to lone surrogates U+DC80-U+DCFF.
_BAD_BYTES = re.compile("[\udc80-\udcff]")


def _has_bad_bytes(values) -> bool:
    # ASCII strings (nearly every field) skip the regex: this check runs on every field
    # of every row and dominated the reading time when it looped over characters.
    return any(isinstance(v, str) and not v.isascii() and _BAD_BYTES.search(v) is not None
               for v in values)


def detect_format(path: str) -> str:
    lower = path.lower()
    if lower.endswith((".jsonl", ".json", ".ndjson")):
        return "jsonl"
    return "csv"


def iter_manifest(path: str, require_metadata: bool = True,
                  fmt: Optional[str] = None) -> Iterator[ManifestRow]:
    """Yield every data row of the manifest at ``path`` (local or remote).

    Raises ``FileNotFoundError``/``ValueError`` with a clear message only for
    problems with the file as a whole (missing, no header, no video_id
    column); problems with a row come back as rows with ``error`` set.
    """
    if not FileSystems.exists(path):
        raise FileNotFoundError(f"manifest {path!r} does not exist: pass --videos with the "
                                f"path of a CSV or JSONL manifest ({', '.join(MANIFEST_COLUMNS)})")
    fmt = fmt or detect_format(path)
    with _open_text(path) as fh:
        if fmt == "jsonl":
            for line_no, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                if _has_bad_bytes([line]):
                    yield ManifestRow(line=line_no, video_id=None, error="invalid UTF-8 bytes")
                    continue
                try:
                    rec = json.loads(line)
                    if not isinstance(rec, dict):
                        raise ValueError("not a JSON object")
                except ValueError as e:
                    yield ManifestRow(line=line_no, video_id=None, error=f"bad JSON: {e}")
                    continue
                yield row_from_mapping(rec, line_no, require_metadata)
            return
        # strict: a stray quote is a bad row (reported), not a silently mangled one.
        reader = csv.reader(fh, strict=True)
        try:
            header = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise ValueError(f"manifest {path!r}: unreadable CSV header: {e}") from e
        header = [h.strip().lstrip("\ufeff") for h in header]
        if "video_id" not in header:
            raise ValueError(f"manifest {path!r} has no 'video_id' column (header: {header}); "
                             f"expected columns {', '.join(MANIFEST_COLUMNS)}")
        while True:
            line_no = reader.line_num + 1
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                yield ManifestRow(line=line_no, video_id=None, error=f"bad CSV: {e}")
                continue
            if not values or not any(v.strip() for v in values):
                continue
            if len(values) != len(header):
                vid = values[header.index("video_id")].strip() if len(values) > header.index(
                    "video_id") else None
                yield ManifestRow(line=line_no, video_id=vid or None,
                                  error=f"expected {len(header)} fields, got {len(values)}")
                continue
            if _has_bad_bytes(values):
                vid = values[header.index("video_id")]
                yield ManifestRow(line=line_no,
                                  video_id=None if _has_bad_bytes([vid]) else vid.strip(),
                                  error="invalid UTF-8 bytes")
                continue
            yield row_from_mapping(dict(zip(header, values)), line_no, require_metadata)
