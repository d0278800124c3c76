"""Just enough of the H.264, HEVC, VP9 and AV1 bitstreams to tell, per packet,
whether a decoder needs it: pure functions and small stateful parsers, no PyAV.

``extractor.skipping`` decides from what these parsers say which packets a
sampler may leave undecoded; ``extractor.decode`` feeds them the demuxed bytes.
Every parser is strict: anything it does not fully understand (a truncated
NAL unit, a syntax element out of range, an unsupported tool such as H.264
slice groups, POC type 1 or MMCO 5, HEVC multi-layer streams, AV1 frame ids)
is reported through ``Unit.doubt`` and the packet is decoded as usual.

A ``Unit`` describes one demuxed packet:

- ``picture``: it holds coded picture data (a slice, a VP9 frame, an AV1
  frame header); ``output``: the decoder shows a frame for it;
- ``droppable``: no later picture can depend on it (H.264 ``nal_ref_idc == 0``
  in every slice; HEVC sub-layer non-reference NAL types at the highest
  temporal sub-layer; AV1 ``refresh_frame_flags == 0``), and nothing else in
  the packet changes decoder state (parameter sets, end of sequence, SEI
  other than timing and user data);
- ``reset``: decoding from here needs nothing earlier (an H.264 IDR or HEVC
  IDR/BLA without ``no_output_of_prior_pics_flag``; a shown VP9 or AV1 key
  frame), so the packets between the last one a sample needs and a reset may
  all be dropped, reference pictures included;
- ``poc``: picture order count within its period (``period`` counts resets and
  other POC restarts), from which ``extractor.skipping`` checks that the
  container's timestamps put the pictures in the order the decoder outputs them.
"""
from __future__ import annotations

import dataclasses

# --------------------------------------------------------------------------- bit reading


class BitstreamError(ValueError):
    """The bytes do not parse as the syntax says (truncated or corrupt)."""


class BitReader:
    """MSB-first reader over ``data`` (an RBSP for H.26x: emulation bytes removed)."""

    __slots__ = ("_value", "_bits", "pos")

    def __init__(self, data: bytes):
        self._value = int.from_bytes(data, "big")
        self._bits = 8 * len(data)
        self.pos = 0

    @property
    def left(self) -> int:
        return self._bits - self.pos

    def u(self, n: int) -> int:
        if n == 0:
            return 0
        end = self.pos + n
        if end > self._bits:
            raise BitstreamError("read past the end of the header")
        self.pos = end
        return (self._value >> (self._bits - end)) & ((1 << n) - 1)

    def flag(self) -> bool:
        return self.u(1) == 1

    def skip(self, n: int) -> None:
        if self.pos + n > self._bits:
            raise BitstreamError("read past the end of the header")
        self.pos += n

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise BitstreamError("exp-Golomb code longer than 32 bits")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)

    def leb128(self) -> int:
        value = 0
        for i in range(8):
            byte = self.u(8)
            value |= (byte & 0x7F) << (7 * i)
            if not byte & 0x80:
                return value
        raise BitstreamError("leb128 longer than 8 bytes")

    def uvlc(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros >= 32:
                return (1 << 32) - 1
        return (1 << zeros) - 1 + self.u(zeros)


def rbsp(nal: bytes, limit: int | None = None) -> bytes:
    """The NAL unit payload with emulation-prevention bytes (00 00 03) removed.

    ``limit`` bounds how many bytes are unescaped: headers sit at the start.
    """
    data = nal if limit is None or len(nal) <= limit else nal[:limit]
    return data.replace(b"\x00\x00\x03", b"\x00\x00") if b"\x00\x00\x03" in data else data


def split_length_prefixed(data: bytes, length_size: int) -> list[bytes]:
    """NAL units of an avcC/hvcC sample: each prefixed by its big-endian length.

    The lengths must tile the packet exactly; anything else (Annex B data in a
    length-prefixed stream, a truncated or corrupt packet) is an error.
    """
    out = []
    i, n = 0, len(data)
    while i < n:
        if i + length_size > n:
            raise BitstreamError("truncated NAL length prefix")
        size = int.from_bytes(data[i:i + length_size], "big")
        i += length_size
        if size == 0 or i + size > n:
            raise BitstreamError(f"NAL length {size} does not fit the packet")
        out.append(data[i:i + size])
        i += size
    return out


def split_annex_b(data: bytes) -> list[bytes]:
    """NAL units of an Annex B byte stream (start codes 00 00 01 / 00 00 00 01)."""
    start = data.find(b"\x00\x00\x01")
    if start < 0 or data[:start].strip(b"\x00"):
        raise BitstreamError("no Annex B start code at the start of the packet")
    out = []
    pos = start + 3
    while True:
        nxt = data.find(b"\x00\x00\x01", pos)
        end = len(data) if nxt < 0 else nxt
        # Trailing zero bytes belong to the next start code (or are
        # trailing_zero_8bits): a NAL unit never ends with a zero byte.
        nal = data[pos:end].rstrip(b"\x00")
        if nal:
            out.append(nal)
        if nxt < 0:
            return out
        pos = nxt + 3


# --------------------------------------------------------------------------- units


@dataclasses.dataclass(slots=True)
class Unit:
    """What one packet is, for the skipping planner (see the module docstring)."""

    picture: bool = False
    output: bool = False
    droppable: bool = False
    reset: bool = False
    poc: int | None = None
    period: int = 0
    doubt: str | None = None      # why this packet cannot be reasoned about (see extractor.skipping)


# SEI payload types that only describe the picture they come with (timing and
# user data); anything else (recovery points, decoder hints, film grain) may
# change how later pictures are decoded or shown, so a packet carrying it is
# always decoded.
_H264_BENIGN_SEI = {0, 1, 4}
_HEVC_BENIGN_SEI = {0, 1, 4, 132}


def _sei_types(payload: bytes) -> set[int] | None:
    """Payload types of an SEI RBSP (H.264 and HEVC share the coding), or None."""
    types = set()
    i, n = 0, len(payload)
    while i < n:
        if n - i == 1 and payload[i] == 0x80:  # rbsp trailing bits
            return types
        ptype = 0
        while i < n and payload[i] == 0xFF:
            ptype += 255
            i += 1
        if i >= n:
            return None
        ptype += payload[i]
        i += 1
        size = 0
        while i < n and payload[i] == 0xFF:
            size += 255
            i += 1
        if i >= n:
            return None
        size += payload[i]
        i += 1 + size
        if i > n:
            return None
        types.add(ptype)
    return types


class _NalParser:
    """Shared packet handling of the H.264 and HEVC parsers."""

    HEADER_BYTES = 0
    codec = ""

    def __init__(self, extradata: bytes | None):
        self.length_size: int | None = None    # None: Annex B
        self.config_error: str | None = None
        self.sps: dict[int, object] = {}
        self.pps: dict[int, object] = {}
        self._raw_ps: dict[tuple[int, int], bytes] = {}
        if extradata:
            try:
                self._read_extradata(bytes(extradata))
            except BitstreamError as e:
                self.config_error = f"unreadable {self.codec} configuration record ({e})"

    def _read_extradata(self, data: bytes) -> None:
        raise NotImplementedError

    def split(self, data: bytes) -> list[bytes]:
        if self.length_size is None:
            return split_annex_b(data)
        return split_length_prefixed(data, self.length_size)

    def _store_ps(self, kind: int, ps_id: int, nal: bytes, parsed, table: dict) -> str | None:
        """Stores a parameter set; returns a stop reason when it changes one in use."""
        key = (kind, ps_id)
        nal = bytes(nal).rstrip(b"\x00")
        old = self._raw_ps.get(key)
        self._raw_ps[key] = nal
        table[ps_id] = parsed
        if old is not None and old != nal:
            return f"{self.codec} parameter set {ps_id} (NAL type {kind}) changed mid-stream"
        return None


# --------------------------------------------------------------------------- H.264


@dataclasses.dataclass(slots=True)
class H264SPS:
    sps_id: int
    chroma_array_type: int
    separate_colour_plane: bool
    log2_max_frame_num: int
    poc_type: int
    log2_max_poc_lsb: int
    frame_mbs_only: bool
    bitstream_restriction: bool
    max_num_reorder_frames: int


@dataclasses.dataclass(slots=True)
class H264PPS:
    pps_id: int
    sps_id: int
    bottom_field_pic_order_in_frame_present: bool
    slice_groups: int
    num_ref_idx_l0_default: int
    num_ref_idx_l1_default: int
    weighted_pred: bool
    weighted_bipred_idc: int
    redundant_pic_cnt_present: bool


_HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}


def _skip_scaling_list(r: BitReader, size: int) -> None:
    last, nxt = 8, 8
    for _ in range(size):
        if nxt != 0:
            delta = r.se()
            if not -128 <= delta <= 127:
                raise BitstreamError("scaling list delta out of range")
            nxt = (last + delta + 256) % 256
        last = nxt if nxt != 0 else last


def _skip_hrd(r: BitReader) -> None:
    cpb_cnt = r.ue() + 1
    if cpb_cnt > 32:
        raise BitstreamError("cpb_cnt out of range")
    r.skip(8)
    for _ in range(cpb_cnt):
        r.ue()
        r.ue()
        r.skip(1)
    r.skip(20)


def parse_h264_sps(payload: bytes) -> H264SPS:
    """``payload``: the SPS RBSP without its one-byte NAL header."""
    r = BitReader(payload)
    profile = r.u(8)
    r.skip(16)  # constraint flags, level
    sps_id = r.ue()
    if sps_id > 31:
        raise BitstreamError("sps_id out of range")
    chroma_format_idc, separate = 1, False
    if profile in _HIGH_PROFILES:
        chroma_format_idc = r.ue()
        if chroma_format_idc > 3:
            raise BitstreamError("chroma_format_idc out of range")
        if chroma_format_idc == 3:
            separate = r.flag()
        r.ue()
        r.ue()
        r.skip(1)
        if r.flag():  # seq_scaling_matrix_present_flag
            for i in range(8 if chroma_format_idc != 3 else 12):
                if r.flag():
                    _skip_scaling_list(r, 16 if i < 6 else 64)
    log2_max_frame_num = r.ue() + 4
    poc_type = r.ue()
    log2_max_poc_lsb = 0
    if log2_max_frame_num > 16 or poc_type > 2:
        raise BitstreamError("frame_num or POC type out of range")
    if poc_type == 0:
        log2_max_poc_lsb = r.ue() + 4
        if log2_max_poc_lsb > 16:
            raise BitstreamError("log2_max_pic_order_cnt_lsb out of range")
    elif poc_type == 1:
        r.skip(1)
        r.se()
        r.se()
        cycle = r.ue()
        if cycle > 255:
            raise BitstreamError("num_ref_frames_in_pic_order_cnt_cycle out of range")
        for _ in range(cycle):
            r.se()
    r.ue()  # max_num_ref_frames
    r.skip(1)
    r.ue()
    r.ue()
    frame_mbs_only = r.flag()
    if not frame_mbs_only:
        r.skip(1)
    r.skip(1)
    if r.flag():  # frame_cropping_flag
        for _ in range(4):
            r.ue()
    restriction, reorder = False, 0
    if r.flag():  # vui_parameters_present_flag
        if r.flag():
            if r.u(8) == 255:
                r.skip(32)
        if r.flag():
            r.skip(1)
        if r.flag():
            r.skip(4)
            if r.flag():
                r.skip(24)
        if r.flag():
            r.ue()
            r.ue()
        if r.flag():
            r.skip(65)
        nal_hrd = r.flag()
        if nal_hrd:
            _skip_hrd(r)
        vcl_hrd = r.flag()
        if vcl_hrd:
            _skip_hrd(r)
        if nal_hrd or vcl_hrd:
            r.skip(1)
        r.skip(1)  # pic_struct_present_flag
        restriction = r.flag()
        if restriction:
            r.skip(1)
            for _ in range(4):
                r.ue()
            reorder = r.ue()
            r.ue()
    return H264SPS(sps_id, 0 if separate else chroma_format_idc, separate, log2_max_frame_num, poc_type,
                   log2_max_poc_lsb, frame_mbs_only, restriction, reorder)


def parse_h264_pps(payload: bytes) -> H264PPS:
    r = BitReader(payload)
    pps_id, sps_id = r.ue(), r.ue()
    if pps_id > 255 or sps_id > 31:
        raise BitstreamError("pps_id or sps_id out of range")
    r.skip(1)  # entropy_coding_mode_flag
    bottom = r.flag()
    groups = r.ue() + 1
    l0 = l1 = 1
    wp, wb, redundant = False, 0, False
    if groups == 1:
        l0, l1 = r.ue() + 1, r.ue() + 1
        if l0 > 32 or l1 > 32:
            raise BitstreamError("num_ref_idx default out of range")
        wp = r.flag()
        wb = r.u(2)
        r.se()
        r.se()
        r.se()
        r.skip(2)
        redundant = r.flag()
    return H264PPS(pps_id, sps_id, bottom, groups, l0, l1, wp, wb, redundant)


@dataclasses.dataclass(slots=True)
class H264Slice:
    nal_type: int
    nal_ref_idc: int
    slice_type: int
    pps_id: int
    frame_num: int
    field: bool
    idr_pic_id: int
    poc_lsb: int
    delta_bottom: int
    no_output_of_prior_pics: bool
    mmco5: bool


def parse_h264_slice(nal_type: int, nal_ref_idc: int, payload: bytes,
                     sps_table: dict, pps_table: dict) -> H264Slice:
    """A slice header up to (for reference slices) dec_ref_pic_marking."""
    r = BitReader(payload)
    r.ue()  # first_mb_in_slice
    slice_type = r.ue()
    if slice_type > 9:
        raise BitstreamError("slice_type out of range")
    slice_type %= 5
    pps_id = r.ue()
    pps = pps_table.get(pps_id)
    if pps is None:
        raise BitstreamError(f"slice refers to unknown PPS {pps_id}")
    sps = sps_table.get(pps.sps_id)
    if sps is None:
        raise BitstreamError(f"PPS {pps_id} refers to unknown SPS {pps.sps_id}")
    if pps.slice_groups != 1:
        raise BitstreamError("slice groups (FMO) are not supported")
    if sps.separate_colour_plane:
        r.skip(2)  # colour_plane_id
    frame_num = r.u(sps.log2_max_frame_num)
    field = False
    if not sps.frame_mbs_only:
        field = r.flag()
        if field:
            r.skip(1)
    idr = nal_type == 5
    idr_pic_id = r.ue() if idr else 0
    poc_lsb = delta_bottom = 0
    if sps.poc_type == 0:
        poc_lsb = r.u(sps.log2_max_poc_lsb)
        if pps.bottom_field_pic_order_in_frame_present and not field:
            delta_bottom = r.se()
    elif sps.poc_type == 1:
        raise BitstreamError("POC type 1 is not supported")
    if nal_ref_idc == 0:
        return H264Slice(nal_type, 0, slice_type, pps_id, frame_num, field, idr_pic_id, poc_lsb,
                         delta_bottom, False, False)
    if pps.redundant_pic_cnt_present:
        r.ue()
    if slice_type == 1:
        r.skip(1)  # direct_spatial_mv_pred_flag
    l0, l1 = pps.num_ref_idx_l0_default, pps.num_ref_idx_l1_default
    if slice_type in (0, 1, 3):
        if r.flag():
            l0 = r.ue() + 1
            if slice_type == 1:
                l1 = r.ue() + 1
    if nal_type in (20, 21):
        raise BitstreamError("MVC slices are not supported")
    for lst in ((0,) if slice_type in (0, 3) else (0, 1) if slice_type == 1 else ()):
        if r.flag():
            for _ in range(100):
                idc = r.ue()
                if idc == 3:
                    break
                if idc > 5:
                    raise BitstreamError("modification_of_pic_nums_idc out of range")
                r.ue()
            else:
                raise BitstreamError("ref_pic_list_modification does not end")
    if (pps.weighted_pred and slice_type in (0, 3)) or (pps.weighted_bipred_idc == 1 and slice_type == 1):
        r.ue()
        if sps.chroma_array_type != 0:
            r.ue()
        for count in ((l0,) if slice_type != 1 else (l0, l1)):
            for _ in range(count):
                if r.flag():
                    r.se()
                    r.se()
                if sps.chroma_array_type != 0 and r.flag():
                    for _ in range(4):
                        r.se()
    no_output = mmco5 = False
    if idr:
        no_output = r.flag()
        r.skip(1)
    elif r.flag():  # adaptive_ref_pic_marking_mode_flag
        for _ in range(100):
            op = r.ue()
            if op == 0:
                break
            if op > 6:
                raise BitstreamError("memory_management_control_operation out of range")
            if op in (1, 3):
                r.ue()
            if op == 2:
                r.ue()
            if op in (3, 6):
                r.ue()
            if op == 4:
                r.ue()
            if op == 5:
                mmco5 = True
        else:
            raise BitstreamError("dec_ref_pic_marking does not end")
    return H264Slice(nal_type, nal_ref_idc, slice_type, pps_id, frame_num, field, idr_pic_id, poc_lsb,
                     delta_bottom, no_output, mmco5)


class H264Parser(_NalParser):
    """Per-packet ``Unit``s of an H.264 stream (avcC or Annex B)."""

    codec = "H.264"
    HEADER_BYTES = 384

    def __init__(self, extradata: bytes | None):
        super().__init__(extradata)
        self._prev_msb = 0
        self._prev_lsb = 0
        self._prev_frame_num = 0
        self._prev_frame_num_offset = 0
        self._period = 0

    def _read_extradata(self, data: bytes) -> None:
        if data[:1] != b"\x01":
            # Annex B parameter sets in the extradata (MPEG-TS style).
            for nal in split_annex_b(data):
                self._parameter_set(nal)
            return
        if len(data) < 7:
            raise BitstreamError("avcC record too short")
        self.length_size = (data[4] & 3) + 1
        if self.length_size == 3:
            raise BitstreamError("avcC NAL length size 3 is invalid")
        pos = 5
        for count_mask in (0x1F, 0xFF):
            count = data[pos] & count_mask
            pos += 1
            for _ in range(count):
                size = int.from_bytes(data[pos:pos + 2], "big")
                nal = data[pos + 2:pos + 2 + size]
                if len(nal) != size or not nal:
                    raise BitstreamError("truncated parameter set in avcC")
                self._parameter_set(nal)
                pos += 2 + size
            if pos >= len(data):
                break

    def _parameter_set(self, nal: bytes) -> str | None:
        kind = nal[0] & 0x1F
        payload = rbsp(nal[1:])
        if kind == 7:
            sps = parse_h264_sps(payload)
            return self._store_ps(7, sps.sps_id, nal, sps, self.sps)
        if kind == 8:
            pps = parse_h264_pps(payload)
            return self._store_ps(8, pps.pps_id, nal, pps, self.pps)
        return None

    def parse(self, data: bytes) -> Unit:
        unit = Unit()
        if self.config_error:
            unit.doubt = self.config_error
            return unit
        try:
            nals = self.split(data)
        except BitstreamError as e:
            unit.doubt = f"unreadable H.264 packet ({e})"
            return unit
        slices: list[H264Slice] = []
        droppable = True
        for nal in nals:
            header = nal[0]
            if header & 0x80:
                unit.doubt = "forbidden_zero_bit set in an H.264 NAL unit header"
                return unit
            kind, ref_idc = header & 0x1F, (header >> 5) & 3
            try:
                if kind in (1, 5):
                    slices.append(parse_h264_slice(kind, ref_idc, rbsp(nal[1:], self.HEADER_BYTES),
                                                   self.sps, self.pps))
                elif kind in (7, 8):
                    changed = self._parameter_set(nal)
                    if changed:
                        unit.doubt = changed
                    droppable = False
                elif kind == 6:
                    types = _sei_types(rbsp(nal[1:]))
                    if types is None or not types <= _H264_BENIGN_SEI:
                        droppable = False
                elif kind in (9, 12):
                    pass  # access unit delimiter, filler
                elif kind in (10, 11, 13, 15, 19):
                    droppable = False  # end of sequence/stream, SPS extension, subset SPS, auxiliary
                elif kind in (2, 3, 4, 14, 20, 21):
                    unit.doubt = f"H.264 NAL type {kind} (data partitioning or MVC) is not handled"
                    return unit
                else:
                    droppable = False
            except BitstreamError as e:
                if len(nal) > self.HEADER_BYTES and kind in (1, 5):
                    try:  # a header longer than the bytes looked at: read the whole unit
                        slices.append(parse_h264_slice(kind, ref_idc, rbsp(nal[1:]), self.sps, self.pps))
                        continue
                    except BitstreamError as e2:
                        e = e2
                unit.doubt = f"unreadable H.264 NAL unit of type {kind} ({e})"
                return unit
        if not slices:
            return unit  # parameter sets, SEI, delimiters only
        first = slices[0]
        for s in slices[1:]:
            if (s.frame_num, s.poc_lsb, s.nal_type, s.pps_id, s.field, s.idr_pic_id) != \
                    (first.frame_num, first.poc_lsb, first.nal_type, first.pps_id, first.field, first.idr_pic_id) \
                    or (s.nal_ref_idc == 0) != (first.nal_ref_idc == 0):
                unit.doubt = "an H.264 packet holds slices of more than one picture"
                return unit
        sps = self.sps[self.pps[first.pps_id].sps_id]
        unit.picture = unit.output = True
        if first.field:
            unit.doubt = "field-coded (interlaced) H.264 pictures are not handled"
            return unit
        if not sps.bitstream_restriction:
            # Without max_num_reorder_frames the decoder guesses its reorder
            # depth from the pictures it sees, so dropping some could change
            # which frames it outputs.
            unit.doubt = "the H.264 SPS has no bitstream_restriction (reorder depth unknown)"
            return unit
        if any(s.mmco5 for s in slices):
            unit.doubt = "H.264 memory_management_control_operation 5 is not handled"
            return unit
        idr = first.nal_type == 5
        ref = first.nal_ref_idc != 0
        unit.poc = self._poc(first, sps, idr, ref)
        if idr:
            self._period += 1
        unit.period = self._period
        unit.droppable = droppable and not ref
        unit.reset = idr and not first.no_output_of_prior_pics
        return unit

    def reorder_depth(self) -> int:
        return max((s.max_num_reorder_frames for s in self.sps.values()), default=16)

    def _poc(self, s: H264Slice, sps: H264SPS, idr: bool, ref: bool) -> int:
        if sps.poc_type == 0:
            if idr:
                self._prev_msb = self._prev_lsb = 0
            max_lsb = 1 << sps.log2_max_poc_lsb
            lsb, prev_lsb, prev_msb = s.poc_lsb, self._prev_lsb, self._prev_msb
            if lsb < prev_lsb and prev_lsb - lsb >= max_lsb // 2:
                msb = prev_msb + max_lsb
            elif lsb > prev_lsb and lsb - prev_lsb > max_lsb // 2:
                msb = prev_msb - max_lsb
            else:
                msb = prev_msb
            top = msb + lsb
            poc = min(top, top + s.delta_bottom)
            if ref:
                self._prev_msb, self._prev_lsb = msb, lsb
            return poc
        # POC type 2: output order is decoding order.
        max_frame_num = 1 << sps.log2_max_frame_num
        if idr:
            offset = 0
        elif self._prev_frame_num > s.frame_num:
            offset = self._prev_frame_num_offset + max_frame_num
        else:
            offset = self._prev_frame_num_offset
        self._prev_frame_num, self._prev_frame_num_offset = s.frame_num, offset
        if idr:
            return 0
        return 2 * (offset + s.frame_num) - (0 if ref else 1)


# --------------------------------------------------------------------------- HEVC


@dataclasses.dataclass(slots=True)
class HevcSPS:
    sps_id: int
    max_sub_layers: int
    separate_colour_plane: bool
    log2_max_poc_lsb: int
    max_num_reorder: int


@dataclasses.dataclass(slots=True)
class HevcPPS:
    pps_id: int
    sps_id: int
    output_flag_present: bool
    num_extra_slice_header_bits: int


def _skip_profile_tier_level(r: BitReader, max_sub_layers_minus1: int) -> None:
    r.skip(88)
    r.skip(8)
    profile_present, level_present = [], []
    for _ in range(max_sub_layers_minus1):
        profile_present.append(r.flag())
        level_present.append(r.flag())
    if max_sub_layers_minus1 > 0:
        r.skip(2 * (8 - max_sub_layers_minus1))
    for p, lv in zip(profile_present, level_present):
        if p:
            r.skip(88)
        if lv:
            r.skip(8)


def parse_hevc_sps(payload: bytes) -> HevcSPS:
    """``payload``: the SPS RBSP without its two-byte NAL header."""
    r = BitReader(payload)
    r.skip(4)
    max_sub_layers_minus1 = r.u(3)
    if max_sub_layers_minus1 > 6:
        raise BitstreamError("sps_max_sub_layers_minus1 out of range")
    r.skip(1)
    _skip_profile_tier_level(r, max_sub_layers_minus1)
    sps_id = r.ue()
    if sps_id > 15:
        raise BitstreamError("sps_id out of range")
    chroma = r.ue()
    if chroma > 3:
        raise BitstreamError("chroma_format_idc out of range")
    separate = r.flag() if chroma == 3 else False
    r.ue()
    r.ue()
    if r.flag():  # conformance_window_flag
        for _ in range(4):
            r.ue()
    r.ue()
    r.ue()
    log2_max_poc_lsb = r.ue() + 4
    if log2_max_poc_lsb > 16:
        raise BitstreamError("log2_max_pic_order_cnt_lsb out of range")
    ordering_present = r.flag()
    reorder = 0
    for i in range(0 if ordering_present else max_sub_layers_minus1, max_sub_layers_minus1 + 1):
        r.ue()
        reorder = r.ue()   # the last one read is the highest sub-layer's
        r.ue()
    return HevcSPS(sps_id, max_sub_layers_minus1 + 1, separate, log2_max_poc_lsb, reorder)


def parse_hevc_pps(payload: bytes) -> HevcPPS:
    r = BitReader(payload)
    pps_id, sps_id = r.ue(), r.ue()
    if pps_id > 63 or sps_id > 15:
        raise BitstreamError("pps_id or sps_id out of range")
    r.skip(1)  # dependent_slice_segments_enabled_flag
    output_flag = r.flag()
    extra = r.u(3)
    return HevcPPS(pps_id, sps_id, output_flag, extra)


_HEVC_IRAP = range(16, 24)
_HEVC_IDR = (19, 20)
_HEVC_BLA = (16, 17, 18)
_HEVC_RASL = (8, 9)
_HEVC_LEADING = (6, 7, 8, 9)


class HevcParser(_NalParser):
    """Per-packet ``Unit``s of an HEVC stream (hvcC or Annex B)."""

    codec = "HEVC"
    HEADER_BYTES = 128

    def __init__(self, extradata: bytes | None):
        super().__init__(extradata)
        self._poc_tid0 = 0
        self._period = 0
        self._after_eos = True   # the first IRAP starts a coded video sequence

    def _read_extradata(self, data: bytes) -> None:
        if data[:1] != b"\x01" or len(data) < 23:
            for nal in split_annex_b(data):
                self._parameter_set(nal)
            return
        self.length_size = (data[21] & 3) + 1
        if self.length_size == 3:
            raise BitstreamError("hvcC NAL length size 3 is invalid")
        arrays, pos = data[22], 23
        for _ in range(arrays):
            if pos + 3 > len(data):
                raise BitstreamError("truncated hvcC array")
            count = int.from_bytes(data[pos + 1:pos + 3], "big")
            pos += 3
            for _ in range(count):
                size = int.from_bytes(data[pos:pos + 2], "big")
                nal = data[pos + 2:pos + 2 + size]
                if len(nal) != size or len(nal) < 2:
                    raise BitstreamError("truncated parameter set in hvcC")
                self._parameter_set(nal)
                pos += 2 + size

    def _parameter_set(self, nal: bytes) -> str | None:
        kind = (nal[0] >> 1) & 0x3F
        if kind == 33:
            sps = parse_hevc_sps(rbsp(nal[2:]))
            return self._store_ps(33, sps.sps_id, nal, sps, self.sps)
        if kind == 34:
            pps = parse_hevc_pps(rbsp(nal[2:]))
            return self._store_ps(34, pps.pps_id, nal, pps, self.pps)
        return None

    def reorder_depth(self) -> int:
        return max((s.max_num_reorder for s in self.sps.values()), default=16)

    def parse(self, data: bytes) -> Unit:
        unit = Unit()
        if self.config_error:
            unit.doubt = self.config_error
            return unit
        try:
            nals = self.split(data)
        except BitstreamError as e:
            unit.doubt = f"unreadable HEVC packet ({e})"
            return unit
        first = None        # (nal type, tid, no_output_of_prior_pics, pic_output, poc_lsb, pps)
        types = set()
        droppable = True
        eos = False
        for nal in nals:
            if len(nal) < 2 or nal[0] & 0x80:
                unit.doubt = "malformed HEVC NAL unit header"
                return unit
            kind = (nal[0] >> 1) & 0x3F
            layer = ((nal[0] & 1) << 5) | (nal[1] >> 3)
            tid = (nal[1] & 7) - 1
            if tid < 0:
                unit.doubt = "HEVC nuh_temporal_id_plus1 is 0"
                return unit
            if layer != 0:
                unit.doubt = "multi-layer HEVC (nuh_layer_id > 0) is not handled"
                return unit
            try:
                if kind < 32:
                    if kind in range(22, 32) or kind in range(10, 16):
                        unit.doubt = f"reserved HEVC NAL type {kind}"
                        return unit
                    types.add((kind, tid))
                    payload = rbsp(nal[2:], self.HEADER_BYTES)
                    if payload[0] & 0x80:   # first_slice_segment_in_pic_flag
                        if first is not None:
                            unit.doubt = "an HEVC packet holds more than one picture"
                            return unit
                        first = self._slice_header(kind, tid, payload)
                elif kind in (32, 33, 34):
                    changed = self._parameter_set(nal)
                    if changed:
                        unit.doubt = changed
                    droppable = False
                elif kind in (39, 40):
                    sei = _sei_types(rbsp(nal[2:]))
                    if sei is None or not sei <= _HEVC_BENIGN_SEI:
                        droppable = False
                elif kind in (35, 38):
                    pass
                elif kind in (36, 37):
                    droppable = False
                    eos = True
                else:
                    droppable = False
            except BitstreamError as e:
                unit.doubt = f"unreadable HEVC NAL unit of type {kind} ({e})"
                return unit
        if eos:
            self._after_eos = True
        if not types:
            return unit
        if first is None or len({k for k, _ in types}) != 1 or len({t for _, t in types}) != 1:
            unit.doubt = "an HEVC packet without a first slice segment, or mixing NAL types"
            return unit
        kind, tid, no_output_prior, pic_output, lsb, sps = first
        irap = kind in _HEVC_IRAP
        if irap and (kind in _HEVC_IDR or kind in _HEVC_BLA or self._after_eos):
            self._period += 1
            new_cvs = True
        else:
            new_cvs = False
        if irap:
            self._after_eos = False
        # POC as FFmpeg derives it (ff_hevc_compute_poc): msb 0 for BLA, 0 for IDR.
        if kind in _HEVC_IDR:
            poc = 0
        else:
            max_lsb = 1 << sps.log2_max_poc_lsb
            prev_lsb = self._poc_tid0 & (max_lsb - 1)
            prev_msb = self._poc_tid0 - prev_lsb
            if kind in _HEVC_BLA:
                msb = 0
            elif lsb < prev_lsb and prev_lsb - lsb >= max_lsb // 2:
                msb = prev_msb + max_lsb
            elif lsb > prev_lsb and lsb - prev_lsb > max_lsb // 2:
                msb = prev_msb - max_lsb
            else:
                msb = prev_msb
            poc = msb + lsb
        sub_layer_nonref = kind < 16 and kind % 2 == 0
        if tid == 0 and not sub_layer_nonref and kind not in _HEVC_LEADING:
            self._poc_tid0 = poc
        unit.picture = True
        unit.poc = poc
        unit.period = self._period
        # RASL pictures are dropped by the decoder after a random access point;
        # they are never used as the next frame of another one.
        unit.output = pic_output and kind not in _HEVC_RASL
        unit.droppable = droppable and sub_layer_nonref and tid == sps.max_sub_layers - 1
        # Only IDR pictures reset: a CRA or BLA may still list earlier pictures
        # in its reference picture set, which the decoder would then look for.
        unit.reset = kind in _HEVC_IDR and not no_output_prior
        return unit

    def _slice_header(self, kind: int, tid: int, payload: bytes):
        r = BitReader(payload)
        r.skip(1)
        no_output_prior = r.flag() if kind in _HEVC_IRAP else False
        pps_id = r.ue()
        pps = self.pps.get(pps_id)
        if pps is None:
            raise BitstreamError(f"slice refers to unknown PPS {pps_id}")
        sps = self.sps.get(pps.sps_id)
        if sps is None:
            raise BitstreamError(f"PPS {pps_id} refers to unknown SPS {pps.sps_id}")
        r.skip(pps.num_extra_slice_header_bits)
        slice_type = r.ue()
        if slice_type > 2:
            raise BitstreamError("slice_type out of range")
        pic_output = r.flag() if pps.output_flag_present else True
        if sps.separate_colour_plane:
            r.skip(2)
        lsb = 0 if kind in _HEVC_IDR else r.u(sps.log2_max_poc_lsb)
        if tid >= sps.max_sub_layers:
            raise BitstreamError("TemporalId above sps_max_sub_layers")
        return kind, tid, no_output_prior, pic_output, lsb, sps


# --------------------------------------------------------------------------- VP9


def vp9_frames(data: bytes) -> list[bytes]:
    """The frames of a VP9 packet: a superframe's parts, or the packet itself."""
    if not data:
        raise BitstreamError("empty VP9 packet")
    marker = data[-1]
    if marker & 0xE0 == 0xC0:
        count = (marker & 7) + 1
        size_bytes = ((marker >> 3) & 3) + 1
        index = 2 + size_bytes * count
        if len(data) >= index and data[-index] == marker:
            frames, offset = [], 0
            for i in range(count):
                start = len(data) - index + 1 + i * size_bytes
                size = int.from_bytes(data[start:start + size_bytes], "little")
                frames.append(data[offset:offset + size])
                offset += size
            if offset > len(data) - index or any(not f for f in frames):
                raise BitstreamError("VP9 superframe index does not match its data")
            return frames
    return [data]


def vp9_frame_header(frame: bytes) -> tuple[bool, bool, bool]:
    """(show_existing_frame, key_frame, shown) from a VP9 uncompressed header."""
    r = BitReader(frame[:16])
    if r.u(2) != 2:
        raise BitstreamError("VP9 frame_marker is not 2")
    profile = r.u(1) | (r.u(1) << 1)
    if profile == 3:
        r.skip(1)
    if r.flag():
        return True, False, True
    key = r.u(1) == 0
    shown = r.flag()
    if key:
        r.skip(1)
        if r.u(24) != 0x498342:
            raise BitstreamError("VP9 key frame without its sync code")
    return False, key, shown


class Vp9Parser:
    """Per-packet ``Unit``s of a VP9 stream.

    Only key frames are used (as ``reset``): a VP9 frame that refreshes no
    reference slot still leaves state the next frame reads (its motion
    vectors and segmentation map, probability contexts, loop-filter deltas),
    so no VP9 frame is ``droppable`` on its own.
    """

    def __init__(self, extradata: bytes | None = None):
        self._index = 0

    def reorder_depth(self) -> int:
        return 0

    def parse(self, data: bytes) -> Unit:
        unit = Unit()
        try:
            headers = [vp9_frame_header(f) for f in vp9_frames(data)]
        except BitstreamError as e:
            unit.doubt = f"unreadable VP9 packet ({e})"
            return unit
        unit.picture = True
        unit.output = any(shown for _, _, shown in headers)
        self._index += 1
        unit.poc = self._index
        existing, key, shown = headers[0]
        unit.reset = len(headers) == 1 and key and shown and not existing
        return unit


# --------------------------------------------------------------------------- AV1


@dataclasses.dataclass(slots=True)
class Av1Sequence:
    reduced_still_picture_header: bool
    decoder_model_info_present: bool
    equal_picture_interval: bool
    buffer_removal_time_length: int
    frame_presentation_time_length: int
    op_idc: list[int]
    op_decoder_model: list[bool]
    frame_id_numbers_present: bool
    force_screen_content_tools: int
    force_integer_mv: int
    order_hint_bits: int


def parse_av1_sequence_header(payload: bytes) -> Av1Sequence:
    r = BitReader(payload)
    r.skip(3)  # seq_profile
    r.skip(1)  # still_picture
    reduced = r.flag()
    dmi = epi = False
    brt_len = fpt_len = 0
    op_idc, op_dm = [0], [False]
    if reduced:
        r.skip(5)
    else:
        if r.flag():  # timing_info_present_flag
            r.skip(64)
            epi = r.flag()
            if epi:
                r.uvlc()
            dmi = r.flag()
            if dmi:
                buffer_delay_length = r.u(5) + 1
                r.skip(32)
                brt_len = r.u(5) + 1
                fpt_len = r.u(5) + 1
        initial_display_delay_present = r.flag()
        count = r.u(5) + 1
        op_idc, op_dm = [], []
        for _ in range(count):
            op_idc.append(r.u(12))
            level = r.u(5)
            if level > 7:
                r.skip(1)
            present = False
            if dmi:
                present = r.flag()
                if present:
                    r.skip(2 * buffer_delay_length + 1)
            op_dm.append(present)
            if initial_display_delay_present and r.flag():
                r.skip(4)
    wbits, hbits = r.u(4) + 1, r.u(4) + 1
    r.skip(wbits + hbits)
    frame_ids = False
    if not reduced:
        frame_ids = r.flag()
        if frame_ids:
            r.skip(7)
    r.skip(3)
    screen, integer_mv, order_bits = 2, 2, 0
    if not reduced:
        r.skip(4)
        order_hint = r.flag()
        if order_hint:
            r.skip(2)
        screen = 2 if r.flag() else r.u(1)
        if screen > 0:
            integer_mv = 2 if r.flag() else r.u(1)
        else:
            integer_mv = 2
        if order_hint:
            order_bits = r.u(3) + 1
    return Av1Sequence(reduced, dmi, epi, brt_len, fpt_len, op_idc, op_dm, frame_ids, screen,
                       integer_mv, order_bits)


def av1_frame_header(seq: Av1Sequence, payload: bytes, temporal_id: int,
                     spatial_id: int) -> tuple[bool, int, bool, int]:
    """(show_existing_frame, frame_type, show_frame, refresh_frame_flags)."""
    r = BitReader(payload[:64])
    if seq.reduced_still_picture_header:
        return False, 0, True, 0xFF
    if r.flag():  # show_existing_frame
        return True, -1, True, 0
    frame_type = r.u(2)
    show = r.flag()
    if show and seq.decoder_model_info_present and not seq.equal_picture_interval:
        r.skip(seq.frame_presentation_time_length)
    if not show:
        r.skip(1)  # showable_frame
    intra = frame_type in (0, 2)
    if frame_type == 3 or (frame_type == 0 and show):
        error_resilient = True
    else:
        error_resilient = r.flag()
    r.skip(1)  # disable_cdf_update
    screen = r.u(1) if seq.force_screen_content_tools == 2 else seq.force_screen_content_tools
    if screen and seq.force_integer_mv == 2:
        r.skip(1)
    if seq.frame_id_numbers_present:
        raise BitstreamError("AV1 frame ids are not supported")
    if frame_type != 3:
        r.skip(1)  # frame_size_override_flag
    r.skip(seq.order_hint_bits)
    if not (intra or error_resilient):
        r.skip(3)  # primary_ref_frame
    if seq.decoder_model_info_present and r.flag():
        for idc, present in zip(seq.op_idc, seq.op_decoder_model):
            if present:
                in_t = (idc >> temporal_id) & 1
                in_s = (idc >> (spatial_id + 8)) & 1
                if idc == 0 or (in_t and in_s):
                    r.skip(seq.buffer_removal_time_length)
    if frame_type == 3 or (frame_type == 0 and show):
        refresh = 0xFF
    else:
        refresh = r.u(8)
    return False, frame_type, show, refresh


class Av1Parser:
    """Per-packet (temporal unit) ``Unit``s of an AV1 stream.

    In AV1 all state a frame leaves for later frames lives in the reference
    slots it refreshes, so a temporal unit whose frames refresh none
    (``refresh_frame_flags == 0``) is ``droppable``; a shown key frame
    refreshes every slot and is a ``reset``.
    """

    def __init__(self, extradata: bytes | None):
        self.seq: Av1Sequence | None = None
        self._raw_seq: bytes | None = None
        self._index = 0
        self.config_error = None
        if extradata and len(extradata) > 4 and extradata[0] & 0x80:
            try:
                self._obus(bytes(extradata[4:]), Unit())
            except BitstreamError as e:
                self.config_error = f"unreadable AV1 configuration record ({e})"
            # The configuration record's copy only opens the decoder; the
            # stream's own sequence headers are what it decodes with.
            self._raw_seq = None

    def reorder_depth(self) -> int:
        return 0

    def _obus(self, data: bytes, unit: Unit) -> list[tuple[bool, int, bool, int]]:
        frames = []
        pos, n = 0, len(data)
        allowed = True
        while pos < n:
            r = BitReader(data[pos:pos + 10])
            if r.u(1):
                raise BitstreamError("AV1 obu_forbidden_bit set")
            kind = r.u(4)
            ext = r.flag()
            has_size = r.flag()
            r.skip(1)
            tid = sid = 0
            if ext:
                tid, sid = r.u(3), r.u(2)
                r.skip(3)
            if has_size:
                size = r.leb128()
            else:
                size = n - pos - r.pos // 8
            start = pos + r.pos // 8
            end = start + size
            if end > n:
                raise BitstreamError("AV1 OBU size past the end of the packet")
            payload = data[start:end]
            if kind == 1:
                if self._raw_seq is not None and self._raw_seq != payload:
                    unit.doubt = "the AV1 sequence header changed mid-stream"
                self._raw_seq = payload
                self.seq = parse_av1_sequence_header(payload)
                allowed = False
            elif kind in (3, 6):
                if self.seq is None:
                    raise BitstreamError("AV1 frame before any sequence header")
                frames.append(av1_frame_header(self.seq, payload, tid, sid))
            elif kind in (2, 4, 7, 15):
                pass
            else:
                allowed = False   # metadata, tile lists, reserved
            pos = end
        unit.droppable = allowed
        return frames

    def parse(self, data: bytes) -> Unit:
        unit = Unit()
        if self.config_error:
            unit.doubt = self.config_error
            return unit
        try:
            frames = self._obus(data, unit)
        except BitstreamError as e:
            unit.doubt = f"unreadable AV1 temporal unit ({e})"
            unit.droppable = False
            return unit
        if not frames:
            unit.droppable = False
            return unit
        unit.picture = True
        unit.output = any(show for _, _, show, _ in frames)
        self._index += 1
        unit.poc = self._index
        unit.droppable = unit.droppable and all(not existing and refresh == 0
                                                for existing, _, _, refresh in frames)
        existing, ftype, show, _ = frames[0]
        unit.reset = not existing and ftype == 0 and show
        return unit


def parser_for(codec: str, extradata: bytes | None):
    """The parser for a decoder name (PyAV ``codec_context.name``), or None."""
    if codec == "h264":
        return H264Parser(extradata)
    if codec == "hevc":
        return HevcParser(extradata)
    if codec in ("vp9", "libvpx-vp9"):
        return Vp9Parser(extradata)
    if codec in ("libdav1d", "av1", "libaom-av1"):
        return Av1Parser(extradata)
    return None
