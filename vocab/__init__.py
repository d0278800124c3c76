"""vocab: vocabulary construction, video selection, entity filtering and splits (issue 5).

``manifest`` (reading the videos manifest), ``catalog`` (entities and ratings),
``config`` (``VocabConfig``: the rule flags), ``rules`` (the pure rules and the
hash), ``select`` (``SelectVideos``, the Beam transform: ``Video`` and
``ExcludedRow`` records), ``outputs`` and ``write`` (its output files),
``stats`` (accounting, figures, plots), ``launch`` (the ``vocab`` job, staged
and published), ``cli`` (``run_pipeline.py vocab``), ``synthetic`` (generated
inputs for tests, benchmarks and the demo).
"""
