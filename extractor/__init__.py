"""extractor: frames at 1 frame/s and their Inception-v3 features.

``decode`` (PyAV sampling, ``DecodeError``, ``DecodeWarning``s), ``weights``
(every weights source -> ``FeatureModel``), ``handler`` (the ``RunInference``
model handler), ``transforms`` (``ExtractFeatures``: ``Video`` ->
``VideoFeatures`` / ``FailureRecord``), ``synth`` (generated videos), ``cli``
(``run_pipeline.py extract``'s flags). See docs/decoding.md and docs/extractor.md.
"""
