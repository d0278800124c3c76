"""The people's side of the dataset: the explorer (Figure 1) and human ratings (3.1, 3.5).

``run_pipeline.py serve --data_dir OUT`` runs one local web application on a
build: browse the 24 top-level verticals, entities and their videos, search
entities by name, see the statistics plots; raters signed in with a token
rate entities (Figure 4a: how visually recognisable is it, 1-5) and mark the
entities present in a sample of test videos (section 3.5). Exports close the
loops: ``ratings export --entities`` writes the vocab stage's ratings CSV,
``ratings export --videos`` the human labels that ``evaluate
--human_labels`` scores a model on (Table 4).

Modules: ``source`` (the build's files), ``index`` (the SQLite index of a
build, incremental), ``db`` (the ratings database schema and engine),
``tasks`` (raters, hand-out, ratings), ``agreement`` (majorities, precision
and recall of the ground truth, Fleiss' kappa), ``exports``, ``service``
(start-up), ``app`` (the FastAPI application), ``cli``. docs/explorer.md has
the whole story.
"""
