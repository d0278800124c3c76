"""explorer/tasks.py: raters and tokens, fair hand-out of 3 slots per task, ratings."""
from __future__ import annotations

import sqlite3
import threading
from collections import Counter

import pytest

from yt8m.explorer import db as D
from yt8m.explorer import tasks as T


@pytest.fixture
def store(tmp_path):
    database = D.Database(D.sqlite_url(str(tmp_path / "r.sqlite")))
    database.create()
    yield T.Store(database, lease_s=600)
    database.dispose()


def raters(store, n, admin=False):
    return [store.rater_by_token(store.add_rater(f"r{i}", admin)) for i in range(n)]


def test_tokens_are_stored_hashed_and_names_are_unique(store, tmp_path):
    token = store.add_rater("ada", admin=True)
    rater = store.rater_by_token(token)
    assert rater.name == "ada" and rater.is_admin
    assert store.rater_by_token(token + "x") is None and store.rater_by_token("") is None
    raw = sqlite3.connect(tmp_path / "r.sqlite").execute("SELECT token_hash FROM raters").fetchall()
    assert raw == [(T.hash_token(token),)] and token not in str(raw)
    with pytest.raises(T.Conflict):
        store.add_rater("ada")
    with pytest.raises(T.Invalid):
        store.add_rater("no spaces")
    fresh = store.new_token("ada")
    assert store.rater_by_token(token) is None and store.rater_by_token(fresh).name == "ada"
    store.revoke("ada")
    assert store.rater_by_token(fresh) is None
    with pytest.raises(T.NotFound):
        store.revoke("nobody")


def test_each_task_gets_three_distinct_raters_and_completes_in_order(store):
    keys = [f"/m/e{i}" for i in range(10)]
    assert store.ensure_entity_tasks(keys) == 10
    assert store.ensure_entity_tasks(keys) == 0          # idempotent
    rs = raters(store, 4)
    done = Counter()
    by = {}
    rounds = 0
    while True:
        progressed = False
        for r in rs:
            kg = store.next_entity_task(r)
            if kg is None:
                continue
            store.rate_entity(r, kg, 2)
            done[kg] += 1
            by.setdefault(kg, set()).add(r.name)
            progressed = True
            # Never a fourth: at every moment, no task has more than 3 ratings, and a
            # task gets its ratings before later tasks (by rank) get any beyond theirs.
            assert max(done.values()) <= 3
        rounds += 1
        if not progressed:
            break
    assert done == {k: 3 for k in keys} and all(len(s) == 3 for s in by.values())
    prog = store.progress()["entities"]
    assert prog["complete"] == 10 and prog["ratings"] == 30 and prog["leased"] == 0


def test_no_task_waits_for_its_third_while_others_lack_one(store):
    store.ensure_entity_tasks([f"/m/e{i}" for i in range(6)])
    a, b = raters(store, 2)
    started = []
    for _ in range(2):
        kg = store.next_entity_task(a)
        store.rate_entity(a, kg, 1)
        started.append(kg)
    # The next rater is handed the tasks already started, in the same order, not
    # fresh ones: tasks fill up one after the other.
    for kg in started:
        assert store.next_entity_task(b) == kg
        store.rate_entity(b, kg, 1)
    assert store.progress()["entities"]["by_ratings"] == {"0": 4, "1": 0, "2": 2, "3": 0}


def test_asking_again_returns_the_held_task(store):
    store.ensure_entity_tasks(["/m/a", "/m/b"])
    (r,) = raters(store, 1)
    assert store.next_entity_task(r) == store.next_entity_task(r)
    assert store.progress()["entities"]["leased"] == 1


def test_an_expired_lease_goes_to_the_next_rater_and_its_holder_cannot_submit(store):
    store.ensure_entity_tasks(["/m/only"])
    a, b, c, d = raters(store, 4)
    for r in (a, b, c):
        assert store.next_entity_task(r, now=1000.0) == "/m/only"
    assert store.next_entity_task(d, now=1001.0) is None      # 3 slots held
    assert store.next_entity_task(d, now=1000.0 + 601) == "/m/only"
    with pytest.raises(T.Conflict, match="expired"):
        store.rate_entity(a, "/m/only", 2)
    store.rate_entity(b, "/m/only", 2)       # expired but not taken: still b's
    store.rate_entity(d, "/m/only", 3)


def test_bad_submissions_write_nothing(store):
    store.ensure_entity_tasks(["/m/a"])
    (r, other) = raters(store, 2)
    kg = store.next_entity_task(r)
    for bad in (0, 6, "7", "x", "", None, 2.5, True, "2.0"):
        with pytest.raises(T.Invalid):
            store.rate_entity(r, kg, bad)
    with pytest.raises(T.NotFound):
        store.rate_entity(r, "/m/unknown", 2)
    with pytest.raises(T.Conflict, match="not assigned"):
        store.rate_entity(other, kg, 2)
    with pytest.raises(T.Invalid):
        store.rate_entity(r, None, 2)
    assert store.entity_scores() == {}
    store.rate_entity(r, kg, "2")
    with pytest.raises(T.Conflict, match="already rated"):
        store.rate_entity(r, kg, 3)
    assert store.entity_scores() == {"/m/a": [("r0", 2)]}


def test_video_marks_are_checked_against_the_vocabulary(store):
    store.ensure_video_tasks([("v1", 5, ["/m/a", "/m/b"]), ("v2", 7, ["/m/a"])])
    (r,) = raters(store, 1)
    assert store.next_video_task(r) == "v1"
    with pytest.raises(T.Invalid, match="vocabulary"):
        store.rate_video(r, "v1", ["/m/zzz"], known={"/m/a", "/m/b"})
    with pytest.raises(T.Invalid):
        store.rate_video(r, "v1", "/m/a", known={"/m/a"})
    store.rate_video(r, "v1", ["/m/a", "/m/a", "/m/b"], known={"/m/a", "/m/b"})
    with pytest.raises(T.Conflict):
        store.rate_video(r, "v1", [], known={"/m/a"})
    marks = store.video_marks()
    assert marks == {"v1": {"candidates": ["/m/a", "/m/b"], "raters": {"r0": ["/m/a", "/m/b"]}}}


def test_concurrent_raters_never_overfill_or_double_rate(store):
    keys = [f"/m/e{i}" for i in range(40)]
    store.ensure_entity_tasks(keys)
    rs = raters(store, 12)
    errors = []

    def work(r):
        try:
            while True:
                kg = store.next_entity_task(r)
                if kg is None:
                    return
                store.rate_entity(r, kg, 1 + (r.id % 5))
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(r,)) for r in rs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    scores = store.entity_scores()
    assert sorted(scores) == sorted(keys)
    assert all(len(v) == 3 and len({n for n, _ in v}) == 3 for v in scores.values())


def test_candidates_mix_truth_predictions_and_random_entities():
    vocab = [f"/m/{i}" for i in range(50)]
    c = T.candidates_for("v", ["/m/1"], ["/m/1", "/m/2", "/m/3"], vocab, total=10)
    assert len(c) == len(set(c)) == 10 and {"/m/1", "/m/2", "/m/3"} <= set(c)
    assert T.candidates_for("v", ["/m/1"], [], vocab) == T.candidates_for("v", ["/m/1"], [],
                                                                         vocab)
    # Many labels still get random company; the truth is not always first.
    many = T.candidates_for("w", vocab[:12], [], vocab, total=10)
    assert len(set(many) - set(vocab[:12])) >= 3
    firsts = {T.candidates_for(f"v{i}", ["/m/1"], [], vocab)[0] for i in range(20)}
    assert len(firsts) > 5
