"""Hardware decoding: which device decodes a video, probed once per process.

``hwaccel_for(device)`` returns the ``av.codec.hwaccel.HWAccel`` settings to
open a container with (None for ``"cpu"``). The first request for a device
creates one device context to see whether it exists; when it does not (no
GPU, no driver, an FFmpeg build without it), every later request gets None
at once and ONE ``DecodeDeviceWarning`` is issued for the whole process, not
one per video: a build that asks for ``cuda`` on a CPU worker decodes on the
CPU and says so once.

Frames a hardware decoder returns are downloaded to system memory in the
device's layout (NV12 for 8-bit 4:2:0, P010 for 10-bit); ``software_frame``
repacks them, losslessly, into the planar format the CPU decoder gives
(yuv420p, yuv420p10le, ...), so the RGB conversion that follows is the very
same as for a CPU decode.
"""
from __future__ import annotations

import threading
import warnings

import av

DEVICES = ("cpu", "cuda")


class DecodeDeviceWarning(RuntimeWarning):
    """The requested decode device is not available; videos decode on the CPU."""


_lock = threading.Lock()
_probed: dict[str, str | None] = {}   # device -> None (usable) or why not
_warned: set[str] = set()

# Device layouts (after download) -> the planar format of a CPU decode.
_PLANAR = {
    "nv12": "yuv420p", "nv21": "yuv420p", "nv16": "yuv422p", "nv24": "yuv444p",
    "p010le": "yuv420p10le", "p012le": "yuv420p12le", "p016le": "yuv420p16le",
    "p210le": "yuv422p10le", "p410le": "yuv444p10le",
}


def _options(device: str) -> dict:
    # The CUDA primary context is shared by every decoder of the process, so
    # opening a video does not create (and tear down) a context of its own.
    return {"primary_ctx": "1"} if device == "cuda" else {}


def _probe(device: str) -> str | None:
    if device not in av.codec.hwaccel.hwdevices_available():
        return f"this FFmpeg build has no {device} support (it has: " \
               f"{', '.join(av.codec.hwaccel.hwdevices_available()) or 'none'})"
    try:
        accel = av.codec.hwaccel.HWAccel(device_type=device, allow_software_fallback=True,
                                         options=_options(device))
        accel.create(av.codec.Codec("h264", "r"))
    except Exception as e:  # noqa: BLE001 - any failure means: no usable device
        return f"no usable {device} device ({type(e).__name__}: {e})"
    return None


def device_problem(device: str) -> str | None:
    """Why ``device`` cannot decode in this process (None: it can). Probed once."""
    if device == "cpu":
        return None
    with _lock:
        if device not in _probed:
            _probed[device] = _probe(device)
        return _probed[device]


def warn_once(device: str, reason: str, key: str | None = None) -> None:
    """Issues the process's one ``DecodeDeviceWarning`` for ``device`` (per ``key``:
    a missing device, or a device that would not open a file)."""
    key = key or device
    with _lock:
        if key in _warned:
            return
        _warned.add(key)
    warnings.warn(DecodeDeviceWarning(
        f"decode_device={device!r} requested but {reason}; decoding on the CPU instead "
        "(this warning is shown once per process)"), stacklevel=4)


def hwaccel_for(device: str):
    """``HWAccel`` settings for ``device``, or None (CPU; warned once if it was asked for)."""
    if device == "cpu":
        return None
    reason = device_problem(device)
    if reason is not None:
        warn_once(device, reason)
        return None
    return av.codec.hwaccel.HWAccel(device_type=device, allow_software_fallback=True,
                                    options=_options(device))


def software_frame(frame):
    """``frame`` in the planar layout a CPU decode gives (a lossless repack), or as is."""
    target = _PLANAR.get(frame.format.name)
    return frame if target is None else frame.reformat(format=target)


def _reset_for_tests() -> None:
    with _lock:
        _probed.clear()
        _warned.clear()
