"""pipeline: the jobs (``build``, ``resplit``, ``extract``) as Beam pipelines made of shared stages.

Compositions: ``build`` (``BuildDataset``) and ``extract`` (``ExtractVideos``).
Stages: ``features`` (cache-or-extract), ``fit`` (order-independent PCA and
quantizer fits), ``encode`` (records per kind and split), ``artifacts`` (pca,
quantizer, quality report), ``write`` (records, failures, counts) with
``counts`` (the bounded counts behind counts.json). Around them: ``config``
(what a job needs), ``launch`` (check inputs, run, publish), ``report``
(dataset_info.json, summary, messages), ``io`` (Beam writers, staging and
publishing), ``cache`` (the float16 feature cache), ``schema`` (TFRecord
layouts), ``progress`` (the local progress line), ``runner`` (runner choice),
``cli`` (``build``/``resplit`` flags), ``demo``. See docs/architecture.md,
docs/pipeline.md and docs/dataflow.md.
"""
