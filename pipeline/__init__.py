"""pipeline: the whole dataset build as one Beam pipeline.

``build`` (BuildDataset and its stages), ``cache`` (float16 raw-feature cache),
``fit`` (order-independent PCA/quantizer fits), ``io`` (TFRecord writers, atomic
publishing), ``progress`` (terminal progress and summary), ``cli`` (``build``
and ``resplit``), ``demo``, ``schema`` (TFRecord layouts), ``runner`` (local
runner choice). See docs/pipeline.md and docs/dataflow.md.
"""
