"""Small I/O helpers shared by the compression artifacts: atomic writes and
reads through Beam's ``FileSystems`` (so local paths and ``gs://`` work alike).
"""
from __future__ import annotations

import io
import uuid

import numpy as np
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

_RAW = CompressionTypes.UNCOMPRESSED


def write_bytes_atomically(path: str, data: bytes) -> None:
    """Writes ``data`` to a temporary sibling of ``path`` and renames it, so
    readers never see a half-written artifact."""
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:12]}"
    with FileSystems.create(tmp, compression_type=_RAW) as f:
        f.write(data)
    if FileSystems.exists(path):
        # Object stores cannot rename over an existing object.
        FileSystems.delete([path])
    FileSystems.rename([tmp], [path])


def read_bytes(path: str) -> bytes:
    if not FileSystems.exists(path):
        raise FileNotFoundError(f"{path}: no such file; check the path (local or gs://).")
    with FileSystems.open(path, compression_type=_RAW) as f:
        return f.read()


def save_npz(path: str, **arrays: np.ndarray) -> None:
    """``np.savez`` to ``path`` exactly as given (no ``.npz`` suffix added), atomically."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    write_bytes_atomically(path, buf.getvalue())


def load_npz(path: str, keys: tuple[str, ...], what: str) -> dict[str, np.ndarray]:
    """Loads an ``.npz`` and checks it holds exactly ``keys``; ``what`` names
    the artifact in errors."""
    data = read_bytes(path)
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            out = {k: z[k] for k in z.files}
    except Exception as e:  # a zip/npy parsing error: say which file and what it should be
        raise ValueError(f"{path}: not a readable .npz file ({e}); expected a {what} "
                         f"saved by {what}.save().") from e
    if set(out) != set(keys):
        raise ValueError(f"{path}: a {what} file holds exactly the arrays {sorted(keys)}, "
                         f"this one holds {sorted(out)}; re-save it with {what}.save().")
    return out


def load_npy(path: str) -> np.ndarray:
    data = read_bytes(path)
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as e:
        raise ValueError(f"{path}: not a readable .npy file ({e}).") from e
