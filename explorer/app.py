"""The explorer's web application (FastAPI, server-side Jinja2 templates).

Pages (public): the 24 verticals with entity and video counts (Figure 6),
a vertical's entities, search by entity name, an entity's page (Figure 1),
a video's page, the build's statistics plots. Rating (signed-in raters):
entity tasks (Figure 4a) and video tasks (section 3.5). Admin: progress per
task and per rater, exports. ``/api/...`` gives the same as JSON.

Who sees what: test-split labels are private (the dataset withholds them).
No page, JSON answer or search result shows a test video's labels, a test
video among an entity's videos, or per-entity / per-vertical test counts to
anyone but an admin. The one place a test video's labels appear is a video
rating task, mixed into a shuffled, unmarked list of candidates with a
model's predictions and random entities (``tasks.candidates_for``).

Sign-in: an admin creates a rater with ``run_pipeline.py raters add NAME``,
which prints a link ``/signin?token=...``; opening it sets an HttpOnly,
SameSite=Strict cookie holding the token (so another site cannot post a
rating in the rater's name). Scripts send ``Authorization: Bearer TOKEN``.
Only the token's SHA-256 is stored. Errors are clear 4xx answers (HTML for
pages, JSON under /api/) and a failed request writes nothing.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
from typing import Optional
from urllib.parse import quote, urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from yt8m import fs
from yt8m.explorer import exports as X
from yt8m.explorer import tasks as T
from yt8m.explorer.agreement import majority
from yt8m.explorer.service import Explorer
from yt8m.explorer.verticals import UNASSIGNED, ordered
from yt8m.pipeline import thumbnails as TH

log = logging.getLogger("yt8m.explorer")

HERE = os.path.dirname(os.path.abspath(__file__))
COOKIE = "yt8m_rater"
GRID_PAGE = 24
LIST_PAGE = 50
MAX_BODY = 64 * 1024
PLACEHOLDER = os.path.join(HERE, "static", "placeholder.svg")


def entity_url(kg_id: str) -> str:
    """``/m/0jb2l`` -> ``/entity/m/0jb2l`` (Knowledge Graph ids start with a slash)."""
    return "/entity/" + quote(kg_id.lstrip("/"), safe="/")


def video_url(video_id: str) -> str:
    return "/video/" + quote(video_id, safe="")


def thumb_url(video_id: str, k: int = 0) -> str:
    return "/thumb?" + urlencode({"v": video_id, "k": k})


def strip_url(video_id: str) -> str:
    return "/strip?" + urlencode({"v": video_id})


def _wants_json(request: Request) -> bool:
    path = request.url.path
    if path.startswith("/api/") or path.startswith("/admin/export"):
        return True
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


class _Gate:
    """ASGI middleware: ``check(request)`` answers the request itself, or lets it through."""

    def __init__(self, app, check):
        self.app, self.check = app, check

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            answer = await self.check(Request(scope))
            if answer is not None:
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(explorer: Explorer) -> FastAPI:
    """The application for ``explorer`` (whose ``prepare``/``start`` builds the index)."""
    app = FastAPI(title="yt8m explorer", docs_url=None, redoc_url=None, openapi_url=None)
    templates = Jinja2Templates(directory=os.path.join(HERE, "templates"))
    templates.env.globals.update(entity_url=entity_url, video_url=video_url,
                                 thumb_url=thumb_url, strip_url=strip_url,
                                 scores=T.SCORES, question=T.QUESTION)
    app.mount("/static", StaticFiles(directory=os.path.join(HERE, "static")), name="static")
    app.state.explorer = explorer
    store = explorer.store

    # -- plumbing -------------------------------------------------------------
    def rater_of(request: Request) -> Optional[T.Rater]:
        """The signed-in rater; a bad Bearer token is an error, a stale cookie is anonymous."""
        auth = request.headers.get("authorization")
        if auth:
            scheme, _, token = auth.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise T.Unauthorized("the Authorization header must be 'Bearer TOKEN'")
            rater = store.rater_by_token(token.strip())
            if rater is None:
                raise T.Unauthorized("unknown or revoked token: ask an admin for a sign-in link")
            return rater
        return store.rater_by_token(request.cookies.get(COOKIE))

    def require_rater(request: Request) -> T.Rater:
        # The gate middleware has read the token (a bad Bearer token never gets here).
        rater = getattr(request.state, "user", None)
        if rater is None:
            raise T.Unauthorized("sign in first: open the sign-in link an admin gave you "
                                 "('run_pipeline.py raters add NAME' prints one)")
        return rater

    def require_admin(request: Request) -> T.Rater:
        rater = require_rater(request)
        if not rater.is_admin:
            raise T.Forbidden("this page is for admins only")
        return rater

    def page(request: Request, template: str, status: int = 200, **context) -> HTMLResponse:
        context.setdefault("user", getattr(request.state, "user", None))
        context.setdefault("q", "")
        return templates.TemplateResponse(request, template, context, status_code=status)

    def error_response(request: Request, status: int, message: str) -> Response:
        if _wants_json(request):
            return JSONResponse({"error": message, "status": status}, status_code=status)
        try:
            user = rater_of(request)
        except T.TaskError:
            user = None
        request.state.user = user
        return page(request, "error.html", status=status, status_code=status, message=message,
                    title=f"Error {status}")

    @app.exception_handler(T.TaskError)
    async def _task_error(request: Request, exc: T.TaskError):
        return error_response(request, exc.status, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        message = {404: "no such page", 405: "this method is not allowed here"}.get(
            exc.status_code, str(exc.detail))
        return error_response(request, exc.status_code, message)

    async def gate(request: Request) -> Optional[Response]:
        """Before any route: the index must be ready, bodies small, a Bearer token valid.

        Sets ``request.state.user`` (the signed-in rater or None). Returns the
        answer that ends the request here, or None to go on to the route.
        """
        path = request.url.path
        if path == "/healthz" or path.startswith("/static/"):
            return None
        if not explorer.ready:
            if explorer.error:
                return error_response(request, 500, f"the explorer could not start: "
                                                     f"{explorer.error}")
            msg = (f"indexing the build ({explorer.phase}; {explorer.progress_rows:,} videos "
                   f"read so far); this page reloads by itself")
            if _wants_json(request):
                resp = JSONResponse({"error": msg, "status": 503}, status_code=503)
            else:
                resp = templates.TemplateResponse(request, "indexing.html",
                                                  {"message": msg, "user": None, "q": ""},
                                                  status_code=503)
            resp.headers["Retry-After"] = "2"
            return resp
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > MAX_BODY:
            return error_response(request, 413, f"request body over {MAX_BODY} bytes")
        try:
            request.state.user = await run_in_threadpool(rater_of, request)
        except T.TaskError as e:
            return error_response(request, e.status, e.message)
        return None

    # A plain ASGI middleware (BaseHTTPMiddleware would add a task and a stream
    # per request, a large share of a rating's CPU).
    app.add_middleware(_Gate, check=gate)

    def index():
        return explorer.index

    def is_admin(request: Request) -> bool:
        user = request.state.user
        return bool(user and user.is_admin)

    def page_number(request: Request) -> int:
        raw = request.query_params.get("page", "1")
        if not re.fullmatch(r"[0-9]{1,6}", raw) or int(raw) < 1:
            raise T.Invalid(f"page {raw!r} is not a page number (1, 2, ...)")
        return int(raw)

    def pager(page_no: int, total: int, per: int) -> dict:
        pages = max(1, math.ceil(total / per))
        return {"page": page_no, "pages": pages, "total": total,
                "prev": page_no - 1 if page_no > 1 else None,
                "next": page_no + 1 if page_no < pages else None}

    def find_entity(path: str, admin: bool) -> dict:
        for kg in (f"/{path}", path):
            e = index().entity(kg, include_test=admin)
            if e is not None:
                return e
        raise T.NotFound(f"no entity {path!r} in the vocabulary; search for it by name")

    # -- health ---------------------------------------------------------------
    @app.get("/healthz")
    def healthz():
        return {"ready": explorer.ready, "phase": explorer.phase, "error": explorer.error,
                "rows": explorer.progress_rows}

    # -- browsing -------------------------------------------------------------
    def verticals_data(admin: bool) -> list[dict]:
        counts = index().verticals(include_test=admin)
        rows = []
        for name in ordered(counts):
            if name == UNASSIGNED and name not in counts:
                continue
            c = counts.get(name, {"entities": 0, "train_videos": 0, "validate_videos": 0,
                                  **({"test_videos": 0} if admin else {})})
            top, _ = index().vertical_entities(name, limit=5, include_test=admin)
            rows.append({"name": name, **c,
                         "top": [{"kg_id": e["kg_id"], "name": e["name"]} for e in top]})
        return rows

    @app.get("/", response_class=HTMLResponse)
    def home(request: Request):
        admin = is_admin(request)
        rows = verticals_data(admin)
        max_e = max([r["entities"] for r in rows] + [1])
        max_v = max([r["train_videos"] for r in rows] + [1])
        return page(request, "home.html", title="Verticals", verticals=rows, max_e=max_e,
                    max_v=max_v, entities=index().num_entities(),
                    videos=index().num_videos(include_test=admin), admin=admin,
                    data_dir=explorer.sources.data_dir)

    @app.get("/api/verticals")
    def api_verticals(request: Request):
        return {"verticals": verticals_data(is_admin(request)),
                "videos": index().num_videos(include_test=is_admin(request)),
                "entities": index().num_entities()}

    @app.get("/vertical/{name:path}", response_class=HTMLResponse)
    def vertical(request: Request, name: str):
        known = index().verticals()
        if name not in known and name not in ordered(known):
            raise T.NotFound(f"no vertical {name!r}; the front page lists them")
        p = page_number(request)
        rows, total = index().vertical_entities(name, LIST_PAGE, (p - 1) * LIST_PAGE,
                                                include_test=is_admin(request))
        return page(request, "vertical.html", title=name, name=name, entities=rows,
                    pager=pager(p, total, LIST_PAGE), admin=is_admin(request))

    def search_data(request: Request) -> tuple[str, list, dict]:
        q = request.query_params.get("q", "")
        if len(q) > 200:
            raise T.Invalid("the search text is over 200 characters")
        p = page_number(request)
        rows, total = index().search(q, LIST_PAGE, (p - 1) * LIST_PAGE,
                                     include_test=is_admin(request))
        return q, rows, pager(p, total, LIST_PAGE)

    @app.get("/search", response_class=HTMLResponse)
    def search(request: Request):
        q, rows, pg = search_data(request)
        if len(rows) == 1 and pg["total"] == 1 and request.query_params.get("go") == "1":
            return RedirectResponse(entity_url(rows[0]["kg_id"]), status_code=303)
        return page(request, "search.html", title=f"Search: {q}", q=q, entities=rows, pager=pg,
                    admin=is_admin(request))

    @app.get("/api/search")
    def api_search(request: Request):
        q, rows, pg = search_data(request)
        return {"q": q, "entities": rows, "total": pg["total"], "page": pg["page"]}

    def entity_data(request: Request, path: str) -> dict:
        admin = is_admin(request)
        e = find_entity(path, admin)
        p = page_number(request)
        videos, total = index().entity_videos(e["idx"], GRID_PAGE, (p - 1) * GRID_PAGE,
                                              include_test=admin)
        return {"entity": e, "videos": videos, "pager": pager(p, total, GRID_PAGE)}

    @app.get("/entity/{path:path}", response_class=HTMLResponse)
    def entity(request: Request, path: str):
        d = entity_data(request, path)
        return page(request, "entity.html", title=d["entity"]["name"], admin=is_admin(request),
                    **d)

    @app.get("/api/entity/{path:path}")
    def api_entity(request: Request, path: str):
        d = entity_data(request, path)
        return {"entity": d["entity"], "videos": d["videos"], "total": d["pager"]["total"],
                "page": d["pager"]["page"]}

    def strip_of(video_id: str) -> Optional[TH.Strip]:
        if not explorer.cache_dir:
            return None
        try:
            return TH.read_strip(explorer.cache_dir, video_id)
        except TH.ThumbnailError as e:
            log.warning("thumbnails of %s: %s", video_id, e)
            return None

    def video_data(request: Request, video_id: str) -> dict:
        admin = is_admin(request)
        v = index().video(video_id, include_test=admin)
        if v is None:
            raise T.NotFound(f"no video {video_id!r} in this dataset")
        strip = strip_of(video_id)
        v["thumbnails"] = strip.n if strip else 0
        v["times"] = list(strip.times) if strip and strip.times else None
        if admin and v["split"] == "test":
            marks = store.marks_of(video_id)
            v["human"] = None
            if marks:
                v["human"] = {"raters": marks, "majority": sorted(majority(list(marks.values())))}
        return v

    @app.get("/video/{video_id:path}", response_class=HTMLResponse)
    def video(request: Request, video_id: str):
        v = video_data(request, video_id)
        return page(request, "video.html", title=video_id, video=v, admin=is_admin(request))

    @app.get("/api/video/{video_id:path}")
    def api_video(request: Request, video_id: str):
        return {"video": video_data(request, video_id)}

    def placeholder() -> Response:
        with open(PLACEHOLDER, "rb") as fh:
            return Response(fh.read(), media_type="image/svg+xml",
                            headers={"Cache-Control": "no-cache", "X-Thumbnail": "placeholder"})

    def thumb_args(request: Request) -> str:
        v = request.query_params.get("v", "")
        if not v or len(v) > 255:
            raise T.Invalid("give the video id as ?v=VIDEO_ID")
        if index().split_of(v) is None:
            raise T.NotFound(f"no video {v!r} in this dataset")
        return v

    @app.get("/thumb")
    def thumb(request: Request):
        v = thumb_args(request)
        k = request.query_params.get("k", "0")
        if not re.fullmatch(r"[0-9]{1,2}", k):
            raise T.Invalid(f"k={k!r}: give the thumbnail's number (0, 1, ...)")
        strip = strip_of(v)
        if strip is None or int(k) >= strip.n:
            return placeholder()
        return Response(strip.crop(int(k)), media_type="image/jpeg",
                        headers={"Cache-Control": "max-age=3600"})

    @app.get("/strip")
    def strip(request: Request):
        v = thumb_args(request)
        s = strip_of(v)
        if s is None:
            return placeholder()
        return Response(s.jpeg, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})

    def stats_files() -> list[str]:
        d = explorer.sources.stats_dir
        if not d:
            return []
        return [fs.basename(m.path) for m in fs.match(fs.join(d, "*.png"))]

    @app.get("/stats", response_class=HTMLResponse)
    def stats(request: Request):
        summary = None
        d = explorer.sources.stats_dir
        if d and fs.exists(fs.join(d, "statistics.json")):
            st = fs.read_json(fs.join(d, "statistics.json"))
            summary = {"vocabulary_size": st.get("vocabulary_size"),
                       "split_sizes": st.get("split_sizes"),
                       "labels_per_video": (st.get("labels_per_video") or {}).get("mean"),
                       "specificity": st.get("specificity")}
        return page(request, "stats.html", title="Statistics", files=stats_files(),
                    summary=summary)

    @app.get("/stats/{name}")
    def stats_file(name: str):
        if name not in stats_files():
            raise T.NotFound(f"no statistics plot {name!r}")
        data = fs.read_bytes(fs.join(explorer.sources.stats_dir, name))
        return Response(data, media_type="image/png", headers={"Cache-Control": "max-age=600"})

    # -- signing in -----------------------------------------------------------
    @app.get("/signin")
    def signin(request: Request):
        token = request.query_params.get("token", "")
        rater = store.rater_by_token(token)
        if rater is None:
            raise T.Unauthorized("this sign-in link is not valid (mistyped, or revoked): ask "
                                 "an admin for a new one")
        resp = RedirectResponse("/rate", status_code=303)
        resp.set_cookie(COOKIE, token, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", max_age=90 * 24 * 3600)
        return resp

    @app.post("/signout")
    def signout():
        resp = RedirectResponse("/", status_code=303)
        resp.delete_cookie(COOKIE)
        return resp

    # -- rating ---------------------------------------------------------------
    async def form_of(request: Request) -> dict:
        ctype = request.headers.get("content-type", "")
        if not (ctype.startswith("application/x-www-form-urlencoded")
                or ctype.startswith("multipart/form-data")):
            raise T.Invalid("send the rating as a form (application/x-www-form-urlencoded)")
        try:
            form = await request.form()
        except Exception as e:  # noqa: BLE001 - python-multipart's parse errors vary
            raise T.Invalid(f"the form could not be read: {e}") from None
        return {k: form.getlist(k) for k in form.keys()}

    async def json_of(request: Request) -> dict:
        try:
            body = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            raise T.Invalid("the body is not JSON; send e.g. {\"kg_id\": \"/m/x\", \"score\": 2}") \
                from None
        if not isinstance(body, dict):
            raise T.Invalid("the body must be a JSON object")
        return body

    def one(form: dict, key: str) -> str:
        values = form.get(key) or []
        if len(values) != 1:
            raise T.Invalid(f"the form needs exactly one {key!r} field (got {len(values)})")
        return values[0]

    def entity_task(kg_id: str) -> dict:
        e = index().catalog_entity(kg_id) or {"kg_id": kg_id, "name": kg_id, "description": "",
                                              "wiki_url": "", "verticals": [], "types": []}
        examples = []
        in_vocab = index().entity(kg_id)
        if in_vocab is not None:
            vids, _ = index().entity_videos(in_vocab["idx"], 6, 0, include_test=False)
            examples = [v["video_id"] for v in vids]
        return {"kg_id": kg_id, "name": e["name"], "description": e["description"],
                "wiki_url": e["wiki_url"], "verticals": e["verticals"], "examples": examples}

    def video_task(video_id: str) -> dict:
        task = store.video_task(video_id)
        if task is None:
            raise T.NotFound(f"no video task {video_id!r}")
        kg = task["candidates"]
        ents = {e["kg_id"]: e for e in index().entities_by_idx(index().kg_to_idx(kg).values())}
        strip = strip_of(video_id)
        return {"video_id": video_id, "thumbnails": strip.n if strip else 0,
                "candidates": [{"kg_id": k, "name": ents[k]["name"] if k in ents else k}
                               for k in kg]}

    @app.get("/rate", response_class=HTMLResponse)
    def rate_home(request: Request):
        rater = require_rater(request)
        return page(request, "rate.html", title="Rate", mine=store.rater_progress(rater),
                    overall=store.progress())

    @app.get("/rate/entity", response_class=HTMLResponse)
    def rate_entity_page(request: Request):
        rater = require_rater(request)
        kg = store.next_entity_task(rater)
        if kg is None:
            return page(request, "done.html", title="No entity task left", kind="entity")
        return page(request, "rate_entity.html", title="Rate an entity", task=entity_task(kg),
                    mine=store.rater_progress(rater))

    @app.post("/rate/entity")
    async def rate_entity_submit(request: Request):
        rater = await run_in_threadpool(require_rater, request)
        form = await form_of(request)
        kg, score = one(form, "kg_id"), one(form, "score")
        await run_in_threadpool(store.rate_entity, rater, kg, score)
        return RedirectResponse("/rate/entity", status_code=303)

    @app.get("/rate/video", response_class=HTMLResponse)
    def rate_video_page(request: Request):
        rater = require_rater(request)
        vid = store.next_video_task(rater)
        if vid is None:
            return page(request, "done.html", title="No video task left", kind="video")
        return page(request, "rate_video.html", title="Rate a video", task=video_task(vid),
                    mine=store.rater_progress(rater))

    def check_marks(kg_ids: list, none: bool) -> list:
        if not kg_ids and not none:
            raise T.Invalid("mark every entity present, or tick 'none of these entities is "
                            "present' when there is none")
        if kg_ids and none:
            raise T.Invalid("entities are marked and 'none of these' is ticked: choose one")
        return kg_ids

    @app.post("/rate/video")
    async def rate_video_submit(request: Request):
        rater = await run_in_threadpool(require_rater, request)
        form = await form_of(request)
        vid = one(form, "video_id")
        marks = check_marks(form.get("kg", []), bool(form.get("none")))
        await run_in_threadpool(store.rate_video, rater, vid, marks, explorer.known_kg_ids())
        return RedirectResponse("/rate/video", status_code=303)

    # JSON versions (scripts, the load test)
    @app.post("/api/tasks/entity")
    def api_next_entity(request: Request):
        rater = require_rater(request)
        kg = store.next_entity_task(rater)
        return {"task": entity_task(kg) if kg else None}

    @app.post("/api/ratings/entity", status_code=201)
    async def api_rate_entity(request: Request):
        rater = await run_in_threadpool(require_rater, request)
        body = await json_of(request)
        await run_in_threadpool(store.rate_entity, rater, body.get("kg_id"), body.get("score"))
        return {"ok": True, "kg_id": body.get("kg_id")}

    @app.post("/api/tasks/video")
    def api_next_video(request: Request):
        rater = require_rater(request)
        vid = store.next_video_task(rater)
        return {"task": video_task(vid) if vid else None}

    @app.post("/api/ratings/video", status_code=201)
    async def api_rate_video(request: Request):
        rater = await run_in_threadpool(require_rater, request)
        body = await json_of(request)
        marks = body.get("kg_ids")
        if marks is None:
            raise T.Invalid("give kg_ids: the list of entities present (may be empty with "
                            "\"none\": true)")
        if not isinstance(marks, list):
            raise T.Invalid("kg_ids must be a list of entity ids")
        check_marks(marks, bool(body.get("none")))
        await run_in_threadpool(store.rate_video, rater, body.get("video_id"), marks,
                                explorer.known_kg_ids())
        return {"ok": True, "video_id": body.get("video_id")}

    @app.get("/api/me")
    def api_me(request: Request):
        rater = require_rater(request)
        return {"name": rater.name, "is_admin": rater.is_admin,
                "progress": store.rater_progress(rater)}

    # -- admin ----------------------------------------------------------------
    @app.get("/admin", response_class=HTMLResponse)
    def admin(request: Request):
        require_admin(request)
        rep = X.report(store, index())
        return page(request, "admin.html", title="Admin", progress=store.progress(),
                    report=rep, report_text=X.format_report(rep))

    @app.get("/api/progress")
    def api_progress(request: Request):
        require_admin(request)
        return store.progress()

    @app.get("/admin/export/ratings.csv")
    def export_ratings(request: Request):
        require_admin(request)
        incomplete = request.query_params.get("include_incomplete") == "1"
        text, _ = X.ratings_csv(store, include_incomplete=incomplete)
        return Response(text, media_type="text/csv",
                        headers={"Content-Disposition": "attachment; filename=ratings.csv"})

    @app.get("/admin/export/human_labels.csv")
    def export_human(request: Request):
        require_admin(request)
        text, _ = X.human_labels_csv(store, index())
        return Response(text, media_type="text/csv",
                        headers={"Content-Disposition": "attachment; filename=human_labels.csv"})

    return app
