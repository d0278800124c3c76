"""The web application: pages, JSON, sign-in, who sees test labels (every route), bad input."""
from __future__ import annotations

import html
import json
import re
import sqlite3
from urllib.parse import quote

import pytest

from tests.explorer.helpers import SECRET, client, make_explorer
from yt8m.explorer.app import entity_url, video_url


@pytest.fixture(scope="module")
def world(fake_build_module, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("app")
    ex = make_explorer(fake_build_module, tmp)
    tokens = {"admin": ex.store.add_rater("ada", admin=True)}
    for name in ("ben", "cy", "dee"):
        tokens[name] = ex.store.add_rater(name)
    yield fake_build_module, ex, tokens
    ex.close()


def counts(ex) -> dict:
    con = sqlite3.connect(ex.db.url.split("sqlite:///", 1)[1])
    out = {t: con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
           for t in ("entity_ratings", "video_ratings", "video_marks", "raters")}
    out["done_slots"] = con.execute(
        "SELECT (SELECT COUNT(*) FROM entity_slots WHERE state = 2) + "
        "(SELECT COUNT(*) FROM video_slots WHERE state = 2)").fetchone()[0]
    con.close()
    return out


# --------------------------------------------------------------------------- pages

def test_front_page_lists_the_24_verticals_with_counts(world):
    build, ex, _ = world
    c = client(ex)
    r = c.get("/")
    assert r.status_code == 200
    rows = [html.unescape(x)
            for x in re.findall(r'<a href="/vertical/[^"]+">([^<]+)</a>', r.text)]
    assert rows[:24] == list(__import__("yt8m.explorer.verticals", fromlist=["x"]).TOP_LEVEL)
    data = c.get("/api/verticals").json()
    art = next(v for v in data["verticals"] if v["name"] == "Arts & Entertainment")
    assert art["entities"] == 2 and art["train_videos"] > 0
    assert {"name", "entities", "train_videos", "validate_videos", "top"} == set(art)
    assert len(data["verticals"]) == 24


def test_entity_page_search_and_video_page(world):
    build, ex, _ = world
    c = client(ex)
    r = c.get("/search", params={"q": "guit"})
    assert r.status_code == 200 and entity_url("/m/guitar") in r.text
    r = c.get("/search", params={"q": "guitar", "go": "1"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == entity_url("/m/guitar")
    page = c.get(entity_url("/m/guitar"))
    assert page.status_code == 200
    for text in ("Guitar", "/m/guitar", "https://en.wikipedia.org/wiki/Guitar", "coarse",
                 "The entity Guitar."):
        assert text in page.text
    api = c.get("/api/entity/m/guitar").json()
    listed = {v["video_id"] for v in api["videos"]}
    want = {v for v, (s, ls) in build.videos.items() if "/m/guitar" in ls and s != "test"}
    assert api["total"] == len(want) and listed <= want
    # Paged grid: pages together list every video once.
    seen = []
    for p in range(1, 10):
        j = c.get("/api/entity/m/guitar", params={"page": p}).json()
        seen += [v["video_id"] for v in j["videos"]]
        if not j["videos"]:
            break
    assert sorted(seen) == sorted(want)
    vid = sorted(want)[0]
    v = c.get(f"/api/video/{vid}").json()["video"]
    assert v["split"] in ("train", "validate")
    assert {e["kg_id"] for e in v["labels"]} == set(build.videos[vid][1])
    assert c.get(video_url(vid)).status_code == 200


def test_thumbnails_and_placeholder(world):
    build, ex, _ = world
    c = client(ex)
    vid = build.thumbnails[0]
    r = c.get("/thumb", params={"v": vid, "k": 1})
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert c.get("/strip", params={"v": vid}).headers["content-type"] == "image/jpeg"
    no_thumbs = next(v for v in sorted(build.videos) if v not in build.thumbnails)
    r = c.get("/thumb", params={"v": no_thumbs})
    assert r.status_code == 200 and r.headers["x-thumbnail"] == "placeholder"
    assert c.get("/thumb", params={"v": vid, "k": 7}).headers["x-thumbnail"] == "placeholder"
    assert c.get("/thumb", params={"v": "nope"}).status_code == 404
    assert c.get("/thumb").status_code == 422
    assert c.get("/thumb", params={"v": vid, "k": "-1"}).status_code == 422


def test_statistics_plots(world):
    _, ex, _ = world
    c = client(ex)
    assert "figure6_verticals.png" in c.get("/stats").text
    r = c.get("/stats/figure6_verticals.png")
    assert r.status_code == 200 and r.content[:4] == b"\x89PNG"
    assert c.get("/stats/selection.json").status_code == 404
    assert c.get("/stats/..%2Fsplits.csv").status_code == 404


def test_a_build_without_thumbnails_still_serves(tmp_path):
    from tests.explorer.helpers import write_fake_build
    build = write_fake_build(tmp_path / "old", thumbnails=0)
    import shutil
    shutil.rmtree(build.out / "cache")
    ex = make_explorer(build, tmp_path)
    c = client(ex)
    vid = build.of_split("train")[0]
    assert c.get(video_url(vid)).status_code == 200
    assert "no thumbnails in this build" in c.get(video_url(vid)).text
    assert c.get("/thumb", params={"v": vid}).headers["x-thumbnail"] == "placeholder"
    ex.close()


def test_pages_wait_for_the_index(fake_build, tmp_path):
    from yt8m.explorer.service import Explorer, Settings
    ex = Explorer(Settings(data_dir=str(fake_build.out), db_url=f"sqlite:///{tmp_path}/r.db"))
    c = client(ex)
    assert c.get("/healthz").json()["ready"] is False
    r = c.get("/")
    assert r.status_code == 503 and r.headers["retry-after"] == "2"
    assert c.get("/api/verticals").status_code == 503
    ex.start()
    assert ex.wait(60)
    assert c.get("/").status_code == 200 and c.get("/healthz").json()["ready"] is True
    ex.close()


# --------------------------------------------------------------------------- signing in

def test_sign_in_sets_a_strict_http_only_cookie(world):
    _, ex, tokens = world
    c = client(ex)
    assert c.get("/rate").status_code == 401
    bad = c.get("/signin", params={"token": "forged"}, follow_redirects=False)
    assert bad.status_code == 401 and "set-cookie" not in bad.headers
    r = c.get("/signin", params={"token": tokens["ben"]}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/rate"
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert c.get("/rate").status_code == 200 and "ben" in c.get("/rate").text
    assert c.get("/admin").status_code == 403
    c.post("/signout", follow_redirects=False)
    c.cookies.clear()
    assert c.get("/rate").status_code == 401
    # A forged cookie is no one; a forged Bearer token is refused everywhere.
    c.cookies.set("yt8m_rater", "forged")
    assert c.get("/rate").status_code == 401 and c.get("/").status_code == 200
    assert client(ex, "forged").get("/").status_code == 401
    r = client(ex).get("/api/me", headers={"Authorization": "Basic abc"})
    assert r.status_code == 401 and "Bearer" in r.json()["error"]


# --------------------------------------------------------------------------- privacy

def routes_of(app) -> set:
    from starlette.routing import Mount
    out = set()
    for r in app.routes:
        if isinstance(r, Mount):
            continue
        for m in r.methods - {"HEAD"}:
            out.add((m, r.path))
    return out


def requests_for(build, ex) -> list[tuple[str, str, dict]]:
    """A request (method, url, kwargs) for every route, with every id the build has."""
    ents = list(build.vocabulary)
    vids = sorted(build.videos)
    verts = ["Arts & Entertainment", "Travel", "Pets & Animals", "Games"]
    reqs = [("GET", "/", {}), ("GET", "/healthz", {}), ("GET", "/api/verticals", {}),
            ("GET", "/stats", {}), ("GET", "/stats/figure6_verticals.png", {}),
            ("GET", "/rate", {}), ("GET", "/rate/entity", {}), ("GET", "/rate/video", {}),
            ("GET", "/api/me", {}), ("GET", "/admin", {}), ("GET", "/api/progress", {}),
            ("GET", "/admin/export/ratings.csv", {}),
            ("GET", "/admin/export/human_labels.csv", {}),
            ("POST", "/api/tasks/entity", {}), ("POST", "/api/tasks/video", {}),
            ("GET", "/signin?token=nope", {}),
            ("POST", "/rate/entity", {"data": {"kg_id": "/m/nothing", "score": "2"}}),
            ("POST", "/rate/video", {"data": {"video_id": "nothing", "none": "1"}}),
            ("POST", "/api/ratings/entity", {"json": {"kg_id": "/m/nothing", "score": 2}}),
            ("POST", "/api/ratings/video", {"json": {"video_id": "nothing", "kg_ids": [],
                                                     "none": True}})]
    reqs += [("GET", f"/vertical/{quote(v)}", {}) for v in verts]
    for q in ("a", "e", "o", "zan", "quokka", "secret", "test"):
        reqs += [("GET", f"/search?q={q}", {}), ("GET", f"/api/search?q={q}", {})]
    for kg in ents:
        path = kg.lstrip("/")
        reqs += [("GET", f"/entity/{path}", {}), ("GET", f"/entity/{path}?page=2", {}),
                 ("GET", f"/api/entity/{path}", {})]
    for v in vids:
        reqs += [("GET", f"/video/{v}", {}), ("GET", f"/api/video/{v}", {}),
                 ("GET", f"/thumb?v={v}&k=0", {}), ("GET", f"/strip?v={v}", {})]
    return reqs + [("POST", "/signout", {})]      # last: it ends the session


# A video task shows a test video with candidates that include its labels, mixed and
# unmarked: test_video_tasks_do_not_mark_the_ground_truth checks those two routes.
VIDEO_TASK_ROUTES = ("/rate/video", "/api/tasks/video")


def leaks(build, ex, responses) -> list[str]:
    """Every place where a response ties a test video to one of its labels, or gives test counts."""
    names = {kg: ex.index.entity(kg)["name"] for kg in build.vocabulary}
    found = []
    test_ids = set(build.test_ids)
    for (method, url), (status, ctype, text) in responses.items():
        if "image/" in ctype or url in VIDEO_TASK_ROUTES:
            continue
        if re.search(r"test_count|test_videos|\btest\s*</th>\s*<td>\s*\d", text):
            found.append(f"{url}: a test count")
        mentioned = {v for v in test_ids if re.search(rf"\b{re.escape(v)}\b", text)}
        own_page = any(url.startswith(p) for p in ("/video/", "/api/video/"))
        if mentioned and not own_page:
            found.append(f"{url}: lists test video(s) {sorted(mentioned)}")
        for v in mentioned:
            for kg in build.videos[v][1]:
                if kg in text or re.search(rf">\s*{re.escape(names[kg])}\s*<", text):
                    found.append(f"{url}: test video {v} with its label {kg}")
    return found


def sweep(build, ex, c) -> dict:
    out = {}
    for method, url, kw in requests_for(build, ex):
        r = c.request(method, url, follow_redirects=False, **kw)
        out[(method, url)] = (r.status_code, r.headers.get("content-type", ""), r.text
                              if "image/" not in r.headers.get("content-type", "") else "")
    return out


def test_the_sweep_covers_every_route(world):
    build, ex, _ = world
    from yt8m.explorer.app import create_app
    app = create_app(ex)
    swept = set()
    for method, url, _ in requests_for(build, ex):
        path = url.split("?")[0]
        for m, template in routes_of(app):  # noqa: B007
            pattern = "^" + re.sub(r"\{[^}:]+(:path)?\}", lambda g: ".+" if g.group(1)
                                   else "[^/]+", template) + "$"
            if m == method and re.match(pattern, path):
                swept.add((m, template))
    assert routes_of(app) - swept == set(), "routes the privacy sweep does not request"


@pytest.mark.parametrize("who", ["anonymous", "rater"])
def test_no_route_shows_test_labels_to_non_admins(world, who):
    build, ex, tokens = world
    c = client(ex)
    if who == "rater":
        c.get("/signin", params={"token": tokens["cy"]})
    responses = sweep(build, ex, c)
    assert not [k for k, (s, _, _) in responses.items() if s >= 500]
    assert leaks(build, ex, responses) == []
    # Every public count of an entity excludes the test split.
    for kg in build.vocabulary:
        e = c.get(f"/api/entity/{kg.lstrip('/')}").json()
        assert e["total"] == sum(1 for s, ls in build.videos.values()
                                 if kg in ls and s != "test")
    for kg in SECRET:
        assert c.get(f"/api/entity/{kg.lstrip('/')}").json()["videos"] == []


def test_the_sweep_finds_test_labels_on_admin_pages(world):
    """The checker is not blind: an admin's pages do tie test videos to labels."""
    build, ex, tokens = world
    c = client(ex)
    c.get("/signin", params={"token": tokens["admin"]})
    found = leaks(build, ex, sweep(build, ex, c))
    assert any("test count" in f for f in found)
    assert any("with its label" in f for f in found)
    assert any(f.startswith("/entity/") and "lists test video" in f for f in found)


def test_video_tasks_do_not_mark_the_ground_truth(world):
    build, ex, tokens = world
    c = client(ex, tokens["dee"])
    task = c.post("/api/tasks/video").json()["task"]
    truth = set(build.videos[task["video_id"]][1])
    shown = [x["kg_id"] for x in task["candidates"]]
    assert truth <= set(shown) and len(set(shown) - truth) >= 3
    assert set(task) == {"video_id", "thumbnails", "candidates"}
    assert all(set(x) == {"kg_id", "name"} for x in task["candidates"])
    html = client(ex)
    html.get("/signin", params={"token": tokens["dee"]})
    page = html.get("/rate/video").text
    items = re.findall(r'<label class="option"><input type="checkbox" name="kg" '
                       r'value="[^"]+"> [^<]*</label>', page)
    assert [re.search(r'value="([^"]+)"', i).group(1) for i in items] == shown
    # Every candidate has the very same markup but for its id and name ...
    assert len({re.sub(r'value="[^"]+"> [^<]*', "", i) for i in items}) == 1
    # ... and a ground-truth id appears nowhere else on the page.
    for kg in truth:
        assert page.count(kg) == 1


# --------------------------------------------------------------------------- bad input

def test_bad_requests_are_clear_4xx_and_write_nothing(world):
    build, ex, tokens = world
    eve = client(ex, ex.store.add_rater("eve"))          # holds no task
    before = counts(ex)
    anon = client(ex)
    ben = client(ex, tokens["ben"])
    ada = client(ex, tokens["admin"])
    kg = ben.post("/api/tasks/entity").json()["task"]["kg_id"]
    vid = ben.post("/api/tasks/video").json()["task"]["video_id"]
    form = {"headers": {"content-type": "application/x-www-form-urlencoded"}}
    cases = [
        (anon, "POST", "/api/ratings/entity", {"json": {"kg_id": kg, "score": 2}}, 401),
        (anon, "POST", "/rate/entity", {"data": {"kg_id": kg, "score": "2"}}, 401),
        (client(ex, "x" * 40), "POST", "/api/ratings/entity", {"json": {"kg_id": kg,
                                                                        "score": 2}}, 401),
        (ben, "POST", "/api/ratings/entity", {"content": b"{not json",
                                              "headers": {"content-type": "application/json"}},
         422),
        (ben, "POST", "/api/ratings/entity", {"json": [kg, 2]}, 422),
        (ben, "POST", "/api/ratings/entity", {"json": {"kg_id": kg}}, 422),
        (ben, "POST", "/api/ratings/entity", {"json": {"kg_id": kg, "score": 0}}, 422),
        (ben, "POST", "/api/ratings/entity", {"json": {"kg_id": kg, "score": 6}}, 422),
        (ben, "POST", "/api/ratings/entity", {"json": {"kg_id": kg, "score": "abc"}}, 422),
        (ben, "POST", "/api/ratings/entity", {"json": {"kg_id": kg, "score": 2.5}}, 422),
        (ben, "POST", "/api/ratings/entity", {"json": {"kg_id": "/m/unknown", "score": 2}},
         404),
        (ben, "POST", "/rate/entity", {"data": {"kg_id": kg}}, 422),
        (ben, "POST", "/rate/entity", {"content": f"kg_id={kg}&score=2&score=3", **form}, 422),
        (ben, "POST", "/rate/entity", {"json": {"kg_id": kg, "score": 2}}, 422),
        (ben, "POST", "/rate/entity", {"content": b"\xff\xfe=%%%", **form}, 422),
        (ben, "POST", "/api/ratings/video", {"json": {"video_id": vid}}, 422),
        (ben, "POST", "/api/ratings/video", {"json": {"video_id": vid, "kg_ids": "/m/car"}},
         422),
        (ben, "POST", "/api/ratings/video", {"json": {"video_id": vid, "kg_ids": ["/m/zz"]}},
         422),
        (ben, "POST", "/api/ratings/video", {"json": {"video_id": vid, "kg_ids": []}}, 422),
        (ben, "POST", "/api/ratings/video", {"json": {"video_id": vid, "kg_ids": ["/m/car"],
                                                      "none": True}}, 422),
        (ben, "POST", "/api/ratings/video", {"json": {"video_id": "nope", "kg_ids": ["/m/car"]}},
         404),
        (ben, "POST", "/rate/video", {"data": {"video_id": vid}}, 422),
        (eve, "POST", "/api/ratings/entity", {"json": {"kg_id": kg, "score": 2}}, 409),
        (eve, "POST", "/api/ratings/video", {"json": {"video_id": vid, "kg_ids": ["/m/car"]}},
         409),
        (ben, "GET", "/admin", {}, 403), (anon, "GET", "/admin", {}, 401),
        (ben, "GET", "/admin/export/ratings.csv", {}, 403),
        (anon, "GET", "/admin/export/human_labels.csv", {}, 401),
        (ben, "GET", "/api/progress", {}, 403),
        (anon, "GET", "/entity/m/nothing", {}, 404), (anon, "GET", "/video/nothing", {}, 404),
        (anon, "GET", "/api/video/nothing", {}, 404), (anon, "GET", "/vertical/Nowhere", {}, 404),
        (anon, "GET", "/entity/m/guitar?page=abc", {}, 422),
        (anon, "GET", "/entity/m/guitar?page=0", {}, 422),
        (anon, "GET", "/search?q=" + "x" * 300, {}, 422),
        (anon, "GET", "/no/such/page", {}, 404),
        (ben, "POST", "/api/ratings/entity", {"content": b"{" + b" " * 70000 + b"}",
                                              "headers": {"content-type": "application/json"}},
         413),
        (ada, "PUT", "/api/ratings/entity", {"json": {}}, 405),
    ]
    for c, method, url, kw, want in cases:
        r = c.request(method, url, follow_redirects=False, **kw)
        assert r.status_code == want, (method, url, kw, r.status_code, r.text[:300])
        if url.startswith("/api/"):
            body = r.json()
            assert body["status"] == want and len(body["error"]) > 10
        else:
            assert "error-message" in r.text or r.headers["content-type"].startswith(
                "application/json")
    assert counts(ex) == before
    # The good request is accepted once; the same again is a conflict.
    assert ben.post("/api/ratings/entity", json={"kg_id": kg, "score": 2}).status_code == 201
    again = ben.post("/api/ratings/entity", json={"kg_id": kg, "score": 3})
    assert again.status_code == 409 and "already rated" in again.json()["error"]
    assert ben.post("/api/ratings/video", json={"video_id": vid, "kg_ids": ["/m/car"]}
                    ).status_code == 201
    assert ben.post("/api/ratings/video", json={"video_id": vid, "kg_ids": []}
                    ).status_code == 422
    assert ben.post("/api/ratings/video", json={"video_id": vid, "kg_ids": [], "none": True}
                    ).status_code == 409
    after = counts(ex)
    assert after["entity_ratings"] == before["entity_ratings"] + 1
    assert after["video_ratings"] == before["video_ratings"] + 1
    assert after["video_marks"] == before["video_marks"] + 1


def test_html_rating_forms_round_trip(world):
    build, ex, tokens = world
    c = client(ex)
    c.get("/signin", params={"token": tokens["dee"]})
    page = c.get("/rate/entity").text
    kg = re.search(r'name="kg_id" value="([^"]+)"', page).group(1)
    for s in range(1, 6):
        assert f'value="{s}"' in page
    assert "How difficult is it to identify this entity" in page
    r = c.post("/rate/entity", data={"kg_id": kg, "score": "1"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/rate/entity"
    assert dict(ex.store.entity_scores()[kg])["dee"] == 1
    page = c.get("/rate/video").text
    vid = re.search(r'name="video_id" value="([^"]+)"', page).group(1)
    first = re.search(r'name="kg" value="([^"]+)"', page).group(1)
    r = c.post("/rate/video", data={"video_id": vid, "kg": [first, "/m/car"]},
               follow_redirects=False)
    assert r.status_code == 303
    assert set(ex.store.video_marks()[vid]["raters"]["dee"]) == {first, "/m/car"}
    r = c.post("/rate/entity", data={"kg_id": kg, "score": "1"})
    assert r.status_code == 409 and "already rated" in r.text
