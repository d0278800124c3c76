"""Reading the manifest, the entity catalog and the ratings: bad rows and clear errors."""
from fractions import Fraction

import pytest

from tests.vocab.helpers import ENTITY_HEADER, MANIFEST_HEADER, entity_line, write
from yt8m.vocab.catalog import read_entities, read_ratings
from yt8m.vocab.manifest import iter_manifest


def test_manifest_malformed_rows_never_crash(tmp_path):
    data = (MANIFEST_HEADER.encode()
            + b"ok,u,1000,120,/m/a;/m/b\n"                 # line 2
            + b"views_text,u,lots,120,/m/a\n"              # line 3
            + b"bad\xffbytes,u,1000,120,/m/a\n"            # line 4
            + b"ok_bad_field,u,1000,120,/m/\xfe\n"         # line 5
            + b"quote,\"u\"x,1000,120,/m/a\n"               # line 6: stray quote
            + b"few,u,1000\n"                              # line 7
            + b"neg,u,-5,120,/m/a\n"                       # line 8
            + b"dur,u,1000,abc,/m/a\n"                     # line 9
            + b"\n"                                        # blank: not a row
            + b"last,u,1e3,,\n")                           # line 11
    rows = {r.line: r for r in iter_manifest(write(tmp_path / "m.csv", data))}
    assert sorted(rows) == [2, 3, 4, 5, 6, 7, 8, 9, 11]
    assert rows[2].ok and rows[2].entities == ("/m/a", "/m/b") and rows[2].views == 1000
    assert "views" in rows[3].error and rows[3].video_id == "views_text"
    assert rows[4].error == "invalid UTF-8 bytes" and rows[4].video_id is None
    assert rows[5].error == "invalid UTF-8 bytes" and rows[5].video_id == "ok_bad_field"
    assert "bad CSV" in rows[6].error
    assert "expected 5 fields" in rows[7].error
    assert "views" in rows[8].error
    assert "duration_s" in rows[9].error
    assert rows[11].ok and rows[11].views == 1000 and rows[11].duration_s is None
    assert rows[11].entities == ()


def test_manifest_jsonl(tmp_path):
    data = (b'{"video_id": "a", "uri": "u", "views": 1000, "duration_s": 130, '
            b'"entities": ["/m/a", "/m/b"]}\n'
            b'not json\n'
            b'[1, 2]\n'
            b'{"video_id": "b", "uri": "u", "views": "1200", "duration_s": "", '
            b'"entities": "/m/a;/m/c"}\n')
    rows = list(iter_manifest(write(tmp_path / "m.jsonl", data)))
    assert [r.line for r in rows] == [1, 2, 3, 4]
    assert rows[0].entities == ("/m/a", "/m/b") and rows[0].duration_s == 130
    assert rows[1].error.startswith("bad JSON") and rows[2].error.startswith("bad JSON")
    assert rows[3].views == 1200 and rows[3].entities == ("/m/a", "/m/c")


def test_manifest_missing_file_and_header(tmp_path):
    with pytest.raises(FileNotFoundError, match="--videos"):
        list(iter_manifest(str(tmp_path / "nope.csv")))
    with pytest.raises(ValueError, match="no 'video_id' column"):
        list(iter_manifest(write(tmp_path / "m.csv", "id,uri\n1,u\n")))


def test_entities_read(tmp_path):
    path = write(tmp_path / "e.csv", ENTITY_HEADER + entity_line("/m/a", "sport;animal",
                                                                 "Sports;Games"))
    (e,) = list(read_entities(path))
    assert e.kg_id == "/m/a" and e.types == ("sport", "animal")
    assert e.verticals == ("Sports", "Games") and e.description == "About Name /m/a, in short"


@pytest.mark.parametrize("body,message", [
    (entity_line("/m/a") + entity_line("/m/a"), "line 3: kg_id '/m/a' already on line 2"),
    (",name,sport,Sports,d,u\n", "line 2: empty kg_id"),
    ("/m/a,name,sport\n", "line 2: expected 6 fields"),
    ("/m/a,na\xff\n", None),
    (entity_line("/m/a", verticals="A;B;C;D"), "line 2: 4 verticals"),
])
def test_entities_errors_name_the_line(tmp_path, body, message):
    raw = ENTITY_HEADER.encode() + (body.encode() if "\xff" not in body
                                    else b"/m/a,n\xff,sport,Sports,d,u\n")
    path = write(tmp_path / "e.csv", raw)
    with pytest.raises(ValueError, match=message or "invalid UTF-8"):
        list(read_entities(path))


def test_entities_missing_file_or_column(tmp_path):
    with pytest.raises(FileNotFoundError, match="--entities"):
        list(read_entities(str(tmp_path / "nope.csv")))
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['kg_id'\]"):
        list(read_entities(write(tmp_path / "e.csv", "id,name\n")))
    with pytest.raises(ValueError, match="is empty"):
        list(read_entities(write(tmp_path / "e2.csv", "")))


def test_ratings(tmp_path):
    path = write(tmp_path / "r.csv", "kg_id,rater_id,score\n/m/a,r1,1\n/m/a,r2,2.5\n")
    assert list(read_ratings(path)) == [("/m/a", Fraction(1)), ("/m/a", Fraction(5, 2))]
    for bad, msg in (("x", "is not a number"), ("6", "is outside the 1-5 scale"),
                     ("0.5", "is outside the 1-5 scale")):
        p = write(tmp_path / "bad.csv", f"kg_id,rater_id,score\n/m/a,r1,1\n/m/b,r1,{bad}\n")
        with pytest.raises(ValueError, match=f"line 3: score '{bad}' {msg}"):
            list(read_ratings(p))
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['score'\]"):
        list(read_ratings(write(tmp_path / "r2.csv", "kg_id,rater_id\n")))
