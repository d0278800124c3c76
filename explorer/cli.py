"""Command lines of the explorer: ``serve``, ``raters`` and ``ratings``.

  run_pipeline.py serve --data_dir OUT [--db PATH | --db_url URL] [--host 127.0.0.1] [--port 8080]
  run_pipeline.py raters add NAME [--admin] --data_dir OUT     (prints a sign-in link)
  run_pipeline.py raters list|token NAME|revoke NAME --data_dir OUT
  run_pipeline.py ratings export --entities [--output ratings.csv] --data_dir OUT
  run_pipeline.py ratings export --videos [--output human_labels.csv] --data_dir OUT
  run_pipeline.py ratings report --data_dir OUT [--output report.json]

The ratings database defaults to ``OUT/private/explorer.sqlite`` (``--db`` for
another SQLite file, ``--db_url`` for a server database shared by a team).
"""
from __future__ import annotations

import argparse
import logging
import re
import sys
from typing import Optional, Sequence

from yt8m import fs


def _db_flags(p: argparse.ArgumentParser, data_dir_required: bool = False) -> None:
    p.add_argument("--data_dir", required=data_dir_required,
                   help="a build's output directory (OUT); the ratings database defaults to "
                        "OUT/private/explorer.sqlite")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--db", help="the ratings database as a SQLite file")
    g.add_argument("--db_url", help="the ratings database as a SQLAlchemy URL "
                                    "(e.g. postgresql+psycopg://user@host/yt8m)")


def _db_url(ns: argparse.Namespace) -> str:
    from yt8m.explorer import db as D
    from yt8m.explorer.service import default_db_url
    if ns.db_url:
        return ns.db_url
    if ns.db:
        return D.sqlite_url(ns.db)
    return default_db_url(ns.data_dir)


def _fail(prog: str, err: Exception) -> int:
    print(f"{prog}: error: {err}", file=sys.stderr)
    return 2


class _MaskTokens(logging.Filter):
    """Sign-in links carry the token in their query: keep it out of the access log."""

    _TOKEN = re.compile(r"(token=)[^&\s\"]+")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.args = tuple(self._TOKEN.sub(r"\1***", a) if isinstance(a, str) else a
                                for a in record.args)
        record.msg = self._TOKEN.sub(r"\1***", str(record.msg))
        return True


def build_serve_parser() -> argparse.ArgumentParser:
    from yt8m.explorer.service import DEFAULT_CANDIDATES, DEFAULT_TOP_K, DEFAULT_VIDEO_TASKS
    from yt8m.explorer.tasks import DEFAULT_LEASE_S
    p = argparse.ArgumentParser(
        prog="run_pipeline.py serve",
        description="The dataset explorer and rating server: browse a build's verticals, "
                    "entities and videos; raters rate entities (Figure 4a) and test videos "
                    "(section 3.5).")
    _db_flags(p)
    p.add_argument("--entities", help="entity catalog to rate (default: the build's copy, "
                                      "OUT/private/inputs/entities.csv)")
    p.add_argument("--predictions", help="a model's predictions CSV ('predict' output, or a "
                                         "'train' run's predictions.csv): its top entities join "
                                         "the candidates of video tasks")
    p.add_argument("--index", help="the explorer's index file (default: beside the database)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--video_tasks", type=int, default=DEFAULT_VIDEO_TASKS,
                   help=f"test videos sampled for human rating (default {DEFAULT_VIDEO_TASKS}, "
                        f"as the paper)")
    p.add_argument("--candidates", type=int, default=DEFAULT_CANDIDATES,
                   help=f"entities listed per video task (default {DEFAULT_CANDIDATES})")
    p.add_argument("--top_k", type=int, default=DEFAULT_TOP_K,
                   help=f"predictions per video among the candidates (default {DEFAULT_TOP_K})")
    p.add_argument("--seed", type=int, default=0, help="seed of the task order and the sample")
    p.add_argument("--lease_s", type=float, default=DEFAULT_LEASE_S,
                   help=f"seconds a rater holds a task (default {DEFAULT_LEASE_S:g})")
    p.add_argument("--make_thumbnails", action="store_true",
                   help="first decode the build's videos to write the thumbnails it lacks "
                        "(builds made before the build kept them)")
    return p


def serve_main(argv: Optional[Sequence[str]] = None) -> int:
    p = build_serve_parser()
    ns, rest = p.parse_known_args(argv)
    if rest:
        p.error(f"unrecognized arguments: {' '.join(rest)}")
    from yt8m.explorer.service import Explorer, Settings
    try:
        if ns.make_thumbnails:
            if not ns.data_dir:
                raise ValueError("--make_thumbnails needs --data_dir")
            from yt8m.pipeline.thumbnails import backfill
            counts = backfill(ns.data_dir)
            print(f"thumbnails: {counts['written']} written, {counts['present']} present, "
                  f"{counts['failed']} failed", file=sys.stderr)
        settings = Settings(data_dir=ns.data_dir, catalog=ns.entities, predictions=ns.predictions,
                            db_url=_db_url(ns), index_path=ns.index, lease_s=ns.lease_s,
                            video_tasks=ns.video_tasks, candidates=ns.candidates,
                            top_k=ns.top_k, seed=ns.seed)
        explorer = Explorer(settings)
    except (ValueError, FileNotFoundError) as e:
        return _fail(p.prog, e)
    import uvicorn

    from yt8m.explorer.app import create_app
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("uvicorn.access").addFilter(_MaskTokens())
    app = create_app(explorer)
    explorer.start()
    host = f"[{ns.host}]" if ":" in ns.host else ns.host
    print(f"explorer: http://{host}:{ns.port}/ (indexing {ns.data_dir or ns.entities} in the "
          f"background; ratings in {settings.db_url})", file=sys.stderr)
    print(f"explorer: sign-in links: run_pipeline.py raters add NAME [--admin] "
          f"{_where(ns)} --base_url http://{host}:{ns.port}", file=sys.stderr)
    uvicorn.run(app, host=ns.host, port=ns.port, log_level="info")
    explorer.close()
    return 0


def _where(ns) -> str:
    if ns.db_url:
        return f"--db_url {ns.db_url}"
    if ns.db:
        return f"--db {ns.db}"
    return f"--data_dir {ns.data_dir}"


def raters_main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="run_pipeline.py raters",
                                description="Manage the raters of the explorer's ratings database.")
    p.add_argument("action", choices=("add", "list", "token", "revoke"),
                   help="add NAME (prints a sign-in link), list, token NAME (a new link; the "
                        "old one stops working), revoke NAME")
    p.add_argument("name", nargs="?", help="the rater's name (letters, digits, _.@-)")
    p.add_argument("--admin", action="store_true", help="with add: the rater is an admin "
                                                        "(sees test labels, exports)")
    p.add_argument("--base_url", default="http://127.0.0.1:8080",
                   help="the server's address, for the sign-in link")
    _db_flags(p)
    ns, rest = p.parse_known_args(argv)
    if rest:
        p.error(f"unrecognized arguments: {' '.join(rest)}")
    if ns.action != "list" and not ns.name:
        p.error(f"'raters {ns.action}' needs the rater's NAME")
    from yt8m.explorer import db as D
    from yt8m.explorer.tasks import Store, TaskError
    try:
        database = D.Database(_db_url(ns))
        database.create()
        store = Store(database)
        if ns.action == "list":
            for r in store.raters():
                print(f"{r['name']}\t{'admin' if r['is_admin'] else 'rater'}\t"
                      f"{'active' if r['active'] else 'revoked'}")
            return 0
        if ns.action == "revoke":
            store.revoke(ns.name)
            print(f"revoked {ns.name}: their sign-in link no longer works", file=sys.stderr)
            return 0
        token = store.add_rater(ns.name, ns.admin) if ns.action == "add" \
            else store.new_token(ns.name)
    except (TaskError, ValueError) as e:
        return _fail(p.prog, e)
    role = "admin" if ns.admin else "rater"
    if ns.action == "add":
        print(f"added {role} {ns.name}; sign-in link (shown once, keep it private):",
              file=sys.stderr)
    print(f"{ns.base_url.rstrip('/')}/signin?token={token}")
    return 0


def ratings_main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="run_pipeline.py ratings",
                                description="Export the explorer's ratings, or report on them.")
    p.add_argument("action", choices=("export", "report"))
    what = p.add_mutually_exclusive_group()
    what.add_argument("--entities", action="store_true",
                      help="export: ratings.csv (kg_id,rater_id,score) for 'vocab --ratings'")
    what.add_argument("--videos", action="store_true",
                      help="export: human_labels.csv (majority of 3 raters) for "
                           "'evaluate --human_labels'")
    p.add_argument("--output", help="file to write (default ratings.csv / human_labels.csv; "
                                    "report: JSON here as well as the text on stdout)")
    p.add_argument("--include_incomplete", action="store_true",
                   help="export --entities: also entities with fewer than 3 ratings")
    p.add_argument("--max_mean_rating", type=float, default=2.5,
                   help="report: the vocab stage's visual threshold (default 2.5)")
    _db_flags(p)
    ns, rest = p.parse_known_args(argv)
    if rest:
        p.error(f"unrecognized arguments: {' '.join(rest)}")
    if ns.action == "export" and not (ns.entities or ns.videos):
        p.error("'ratings export' needs --entities or --videos")
    from yt8m.explorer import db as D
    from yt8m.explorer import exports as X
    from yt8m.explorer.tasks import Store
    try:
        database = D.Database(_db_url(ns))
        database.create()
        store = Store(database)
        index = _open_index(ns) if (ns.videos or ns.action == "report") else None
        if ns.action == "report":
            rep = X.report(store, index, ns.max_mean_rating)
            print(X.format_report(rep))
            if ns.output:
                fs.write_json(ns.output, rep)
            return 0
        if ns.entities:
            text, counts = X.ratings_csv(store, ns.include_incomplete)
            out = ns.output or "ratings.csv"
            fs.atomic_write(out, text)
            print(f"wrote {out}: {counts['ratings']} ratings of {counts['entities']} entities"
                  + (f" ({counts['incomplete_left_out']} entities with fewer than 3 ratings left "
                     f"out; --include_incomplete keeps them)"
                     if counts["incomplete_left_out"] else ""), file=sys.stderr)
            return 0
        text, counts = X.human_labels_csv(store, index)
        out = ns.output or "human_labels.csv"
        fs.atomic_write(out, text)
        print(f"wrote {out}: human labels of {counts['videos']} test videos rated by 3 raters "
              f"({counts['videos_without_labels']} with no entity present); it holds test "
              f"labels: keep it private", file=sys.stderr)
        return 0
    except (ValueError, FileNotFoundError) as e:
        return _fail(p.prog, e)


def _open_index(ns):
    """The build's index (built if missing: exporting video labels needs the vocabulary)."""
    if not ns.data_dir:
        raise ValueError("--data_dir OUT is needed here (the vocabulary and the test labels)")
    from yt8m.explorer import source as S
    from yt8m.explorer.index import Index, ensure_index
    from yt8m.explorer.service import default_index_path
    path = default_index_path(_db_url(ns), ns.data_dir.rstrip("/") or "/")
    ensure_index(S.Sources.locate(ns.data_dir), path)
    return Index(path)
