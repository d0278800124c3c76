"""trainer: the YouTube-8M paper's baseline models and metrics (sections 4 and 5).

``trainer.metrics`` (mAP, Hit@k, PERR, GAP; NumPy only), ``trainer.data``
(tf.data readers), ``trainer.models`` (the model registry), ``trainer.train``
(``train``, ``train_on_build``, ``evaluate_run``, ``predict_run``) and
``trainer.cli`` (the ``train``/``evaluate``/``predict`` subcommands). Nothing
is imported here, so ``trainer.metrics`` stays free of TensorFlow.
"""
