"""Data makers for the compression tests (fixtures only: this folder has no
``__init__.py``, so that its modules never shadow the ``compression`` package)."""
import numpy as np
import pytest


def _relu_features(rng, n, d, mix=None, offset=0.3):
    """Correlated non-negative frames, shaped like ReLU pool features."""
    if mix is None:
        mix = rng.standard_normal((d, d)) / np.sqrt(d)
    z = rng.standard_normal((n, mix.shape[0]))
    return np.maximum(z @ mix + offset, 0.0) + 0.01 * rng.standard_normal((n, d))


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def relu_features():
    return _relu_features


def split(x, sizes):
    """Cuts ``x`` into consecutive pieces of the given sizes (the last takes the rest)."""
    out, start = [], 0
    for s in sizes:
        out.append(x[start:start + s])
        start += s
    out.append(x[start:])
    return out


@pytest.fixture
def splitter():
    return split
