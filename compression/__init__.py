"""compression: PCA-whitening of frame features to 1024-d and 8-bit
quantization (paper section 3.3), fit on the train split at any scale.

NumPy core (``pca``, ``quantize``; ``exact`` and ``exact_moments`` for the
build's order-independent fit, ``heldout`` for the quality report's bounded
sample), the one encoding path (``codec``), Beam shells (``compression.beam``,
imported on demand) and the quality report (``quality``). See
docs/compression.md.
"""
from yt8m.compression.pca import Moments, MomentsAccumulator, MomentsCombiner, PCAWhitening
from yt8m.compression.quantize import (Histogram, HistogramAccumulator, HistogramCombiner,
                                  Quantizer, lloyd_max)

__all__ = ["PCAWhitening", "Quantizer", "Moments", "MomentsAccumulator", "MomentsCombiner",
           "Histogram", "HistogramAccumulator", "HistogramCombiner", "lloyd_max"]
