"""extractor.bitstream: the header parsing the skipping rests on.

The parsers are checked against what the files themselves say: every picture
of the encoders' streams parses without doubt, picture order counts put the
pictures in their timestamps' order, ``droppable`` is exactly "no slice has
nal_ref_idc > 0" (H.264, read from the first header byte) or a sub-layer
non-reference NAL type (HEVC), and resets are the container's key frames.
"""
from __future__ import annotations

import av
import pytest

from yt8m.extractor import bitstream
from yt8m.extractor.bitstream import BitReader, BitstreamError
from tests.media import remux


def units_of(path):
    with av.open(path) as c:
        s = c.streams.video[0]
        parser = bitstream.parser_for(s.codec_context.name, s.codec_context.extradata)
        packets = [(p.pts, p.is_keyframe, bytes(p)) for p in c.demux(s) if p.size]
    return parser, [(pts, key, data, parser.parse(data)) for pts, key, data in packets]


def test_exp_golomb_and_fixed_bits():
    # 1 | 010 | 011 | 00100 | 00101 -> ue: 0, 1, 2, 3, 4 ; then se of 010 -> +1, 011 -> -1
    bits = "1" "010" "011" "00100" "00101" "010" "011" "1011"
    r = BitReader(int(bits, 2).to_bytes((len(bits) + 7) // 8, "big") if len(bits) % 8 == 0 else
                  int(bits + "0" * (8 - len(bits) % 8), 2).to_bytes((len(bits) + 7) // 8, "big"))
    assert [r.ue() for _ in range(5)] == [0, 1, 2, 3, 4]
    assert [r.se(), r.se()] == [1, -1]
    assert r.u(4) == 0b1011
    with pytest.raises(BitstreamError):
        BitReader(b"\x00\x00\x00\x00\x00").ue()


def test_emulation_prevention_and_nal_splitting():
    assert bitstream.rbsp(b"\x01\x00\x00\x03\x01\x00\x00\x03\x00\x00\x03") == b"\x01\x00\x00\x01\x00\x00\x00\x00"
    assert bitstream.split_length_prefixed(b"\x00\x02ab\x00\x01c", 2) == [b"ab", b"c"]
    for bad in (b"\x00\x05ab", b"\x00\x02ab\x00", b"\x00\x00"):
        with pytest.raises(BitstreamError):
            bitstream.split_length_prefixed(bad, 2)
    assert bitstream.split_annex_b(b"\x00\x00\x00\x01\x67ab\x00\x00\x01\x68c\x00\x00") == [b"\x67ab", b"\x68c"]
    with pytest.raises(BitstreamError):
        bitstream.split_annex_b(b"\x67ab")


def test_sei_payload_types():
    # pic timing (1, 2 bytes) then user data unregistered (5, 3 bytes), trailing bits.
    assert bitstream._sei_types(b"\x01\x02ab\x05\x03xyz\x80") == {1, 5}
    assert bitstream._sei_types(b"\x01\x09ab") is None


@pytest.mark.parametrize("codec,name,options", [
    ("libx264", "h264.mp4", None),
    ("libx264", "h264_medium.mkv", {"preset": "medium"}),
    ("libx265", "hevc.mp4", None),
    ("libx265", "hevc_open.mkv", None),
    ("libvpx-vp9", "vp9.webm", None),
    ("libsvtav1", "av1.mkv", None),
])
def test_streams_parse_and_picture_order_matches_timestamps(video_factory, codec, name, options):
    video = video_factory(name, codec=codec, width=96, height=64, fps=25, duration_s=6, gop=40,
                          options=options)
    parser, units = units_of(video.path)
    assert all(u.doubt is None and u.picture for *_, u in units)
    by_period = {}
    for pts, _, _, u in units:
        by_period.setdefault(u.period, []).append((u.poc, pts))
    for pairs in by_period.values():
        assert [pts for _, pts in sorted(pairs)] == sorted(pts for _, pts in pairs)
    resets = [i for i, (*_, u) in enumerate(units) if u.reset]
    keys = [i for i, (_, key, _, _) in enumerate(units) if key]
    if codec == "libx265":
        assert resets == [0]           # CRA key frames (open GOP) are not resets
    else:
        assert resets == keys and len(keys) >= 2
    assert any(u.droppable for *_, u in units) == (codec != "libvpx-vp9")


def test_h264_droppable_is_nal_ref_idc_zero(video_factory):
    video = video_factory("refs.mkv", width=96, height=64, fps=25, duration_s=4, options={"preset": "medium"})
    parser, units = units_of(video.path)
    for _, _, data, u in units:
        nals = bitstream.split_length_prefixed(data, parser.length_size)
        slices = [n for n in nals if n[0] & 0x1F in (1, 5)]
        others = {n[0] & 0x1F for n in nals} - {1, 5, 9}
        expected = all((n[0] >> 5) & 3 == 0 for n in slices) and not others
        assert u.droppable == expected


def test_hevc_droppable_types(video_factory):
    video = video_factory("refs.mp4", codec="libx265", width=96, height=64, fps=25, duration_s=4)
    parser, units = units_of(video.path)
    for _, _, data, u in units:
        types = {(n[0] >> 1) & 0x3F for n in bitstream.split_length_prefixed(data, parser.length_size)}
        vcl = {t for t in types if t < 32}
        assert u.droppable == (vcl <= {0, 2, 4, 6, 8} and not types - vcl - {35, 38})


@pytest.mark.parametrize("codec", ["libx264", "libx265"])
def test_annex_b_parses_like_length_prefixed(video_factory, tmp_path, codec):
    video = video_factory(f"{codec}.mkv", codec=codec, width=96, height=64, fps=25, duration_s=4, gop=30)
    ts = remux(video.path, str(tmp_path / f"{codec}.ts"))
    p1, u1 = units_of(video.path)
    p2, u2 = units_of(ts)
    assert p1.length_size == 4 and p2.length_size is None
    assert [(u.poc, u.droppable, u.reset) for *_, u in u1] == [(u.poc, u.droppable, u.reset) for *_, u in u2]


def test_damaged_packets_are_doubted(video_factory):
    video = video_factory("d.mp4", width=96, height=64, fps=25, duration_s=2)
    parser, units = units_of(video.path)
    data = units[5][2]
    assert parser.parse(data[:-3]).doubt            # truncated: lengths do not tile
    assert parser.parse(b"\x00\x00\x00\x02\x80\x00").doubt   # forbidden_zero_bit
    assert parser.parse(b"\x00\x00\x00\x02\x01\x8b").doubt     # slice_type 10: out of range
    for codec in ("h264", "hevc", "vp9", "libdav1d"):
        assert bitstream.parser_for(codec, None).parse(b"\xff\xff\xff\xff").doubt
    assert bitstream.parser_for("mpeg4", None) is None


def test_parameter_set_change_is_a_doubt(video_factory):
    video = video_factory("ps.mp4", width=96, height=64, fps=25, duration_s=1)
    parser, _ = units_of(video.path)
    (kind, _), nal = next((key, nal) for key, nal in parser._raw_ps.items() if key[0] == 8)
    same = len(nal).to_bytes(4, "big") + nal
    assert parser.parse(same).doubt is None            # repeated unchanged: fine
    changed = nal[:-1] + bytes([nal[-1] ^ 0x10])
    assert "changed" in parser.parse(len(changed).to_bytes(4, "big") + changed).doubt
