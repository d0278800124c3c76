"""Reading the entity catalog and the rater scores (CSV, local or ``gs://``).

- entities CSV: ``kg_id,name,types,vertical,description,wiki_url`` (``types``
  and ``vertical`` are ``;``-separated; up to 3 verticals are published).
- ratings CSV: ``kg_id,rater_id,score`` (score 1 = any layperson could identify
  it ... 5 = non-visual).

Unlike the manifest, these are small curated files: a bad row is an error that
names the file and the line (the rules could not be applied faithfully around
it), not a row to skip. ``check_header`` reads only the header so that a
transform can fail at construction time, before a job starts.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterator, Sequence

from yt8m import fs
from yt8m.vocab.manifest import _has_bad_bytes, _open_text
from yt8m.vocab.rules import to_fraction

ENTITY_COLUMNS = ("kg_id", "name", "types", "vertical", "description", "wiki_url")
RATING_COLUMNS = ("kg_id", "rater_id", "score")
MAX_VERTICALS = 3


@dataclass(frozen=True)
class Entity:
    kg_id: str
    name: str = ""
    types: tuple[str, ...] = ()
    verticals: tuple[str, ...] = ()
    description: str = ""
    wiki_url: str = ""


def _split(value: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in (value or "").split(";") if p.strip())


def check_header(path: str, what: str, required: Sequence[str], flag: str) -> list[str]:
    """The file's header, or a clear error if the file or a required column is missing."""
    if not fs.exists(path):
        raise FileNotFoundError(f"{what} file {path!r} does not exist: pass {flag} with a CSV "
                                f"whose header is {','.join(required)}")
    with _open_text(path) as fh:
        try:
            header = next(csv.reader(fh))
        except StopIteration:
            raise ValueError(f"{what} file {path!r} is empty: it needs a header "
                             f"{','.join(required)} and one row per {what[:-1]}") from None
        except csv.Error as e:
            raise ValueError(f"{what} file {path!r}: unreadable CSV header: {e}") from e
    header = [c.strip().lstrip("\ufeff") for c in header]
    missing = [c for c in required if c not in header]
    if missing:
        raise ValueError(f"{what} file {path!r} lacks column(s) {missing} (header: {header}); "
                         f"expected {','.join(required)}")
    return header


def _rows(path: str, what: str, required: Sequence[str], flag: str) -> Iterator[tuple[int, dict]]:
    header = check_header(path, what, required, flag)
    with _open_text(path) as fh:
        reader = csv.reader(fh)
        next(reader)
        while True:
            line = reader.line_num + 1
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                raise ValueError(f"{what} file {path!r} line {line}: bad CSV ({e}); "
                                 f"fix the row") from e
            if not any(v.strip() for v in values):
                continue
            if len(values) != len(header):
                raise ValueError(f"{what} file {path!r} line {line}: expected {len(header)} "
                                 f"fields ({','.join(header)}), got {len(values)}; quote fields "
                                 f"that contain commas")
            if _has_bad_bytes(values):
                raise ValueError(f"{what} file {path!r} line {line}: invalid UTF-8 bytes; "
                                 f"re-encode the file as UTF-8")
            yield line, dict(zip(header, values))


def read_entities(path: str) -> Iterator[Entity]:
    """Every entity of the catalog; ValueError naming the line for a bad or repeated kg_id."""
    seen: dict[str, int] = {}
    for line, rec in _rows(path, "entities", ("kg_id",), "--entities"):
        kg = rec["kg_id"].strip()
        if not kg:
            raise ValueError(f"entities file {path!r} line {line}: empty kg_id")
        if kg in seen:
            raise ValueError(f"entities file {path!r} line {line}: kg_id {kg!r} already on line "
                             f"{seen[kg]}; each entity must appear once")
        seen[kg] = line
        verticals = _split(rec.get("vertical"))
        if len(verticals) > MAX_VERTICALS:
            # vocabulary.csv has three vertical columns; dropping one silently would lose data.
            raise ValueError(f"entities file {path!r} line {line}: {len(verticals)} verticals "
                             f"for {kg!r}, at most {MAX_VERTICALS} are allowed")
        yield Entity(kg_id=kg, name=rec.get("name", "").strip(), types=_split(rec.get("types")),
                     verticals=verticals,
                     description=rec.get("description", "").strip(),
                     wiki_url=rec.get("wiki_url", "").strip())


def read_ratings(path: str) -> Iterator[tuple[str, Fraction]]:
    """(kg_id, score) for every rating; ValueError naming the line for a bad score."""
    for line, rec in _rows(path, "ratings", RATING_COLUMNS, "--ratings"):
        kg = rec["kg_id"].strip()
        if not kg:
            raise ValueError(f"ratings file {path!r} line {line}: empty kg_id")
        raw = rec["score"]
        try:
            score = to_fraction(raw)
        except (ValueError, ZeroDivisionError):
            raise ValueError(f"ratings file {path!r} line {line}: score {raw!r} is not a number "
                             f"(the scale is 1-5)") from None
        if not 1 <= score <= 5:
            raise ValueError(f"ratings file {path!r} line {line}: score {raw!r} is outside the "
                             f"1-5 scale")
        yield kg, score
