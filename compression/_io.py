"""The compression artifacts' ``.npz``/``.npy`` files, read and written through ``yt8m.fs``
(so local paths and ``gs://`` work alike, and a reader never sees half an artifact).
"""
from __future__ import annotations

import io

import numpy as np

from yt8m import fs


def save_npz(path: str, **arrays: np.ndarray) -> None:
    """``np.savez`` to ``path`` exactly as given (no ``.npz`` suffix added), atomically."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    fs.atomic_write(path, buf.getvalue())


def load_npz(path: str, keys: tuple[str, ...], what: str) -> dict[str, np.ndarray]:
    """Loads an ``.npz`` and checks it holds exactly ``keys``; ``what`` names
    the artifact in errors."""
    data = fs.read_bytes(path)
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
    data = fs.read_bytes(path)
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as e:
        raise ValueError(f"{path}: not a readable .npy file ({e}).") from e
