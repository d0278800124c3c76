"""End to end in a real browser (Debian's Chromium under Selenium), on a real demo build.

browse -> search -> entity page -> rate entities as three raters -> export -> ``vocab`` with
the exported ratings -> rate videos -> export -> ``evaluate --human_labels``.

The server is the application under uvicorn on 127.0.0.1 (a free port), in this process.
Without Chromium these tests skip, saying why; with YT8M_REQUIRE_BROWSER=1 (.ci/run) they
fail instead.
"""
from __future__ import annotations

import csv
import json

import pytest

from tests.explorer.helpers import served
from yt8m import cli as run_pipeline
from yt8m.explorer.app import create_app
from yt8m.explorer.service import Explorer, Settings
from yt8m.pipeline.demo import DEMO_VOCAB_FLAGS

pytestmark = pytest.mark.slow

SCORES = {0: (1, 2, 1), 1: (2, 2, 3), 2: (1, 1, 1)}     # by len(kg_id) % 3, per rater


def by(name):
    from selenium.webdriver.common.by import By
    return getattr(By, name)


def wait_for(drv, css, timeout=20):
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait
    return WebDriverWait(drv, timeout).until(EC.presence_of_element_located((by("CSS_SELECTOR"),
                                                                            css)))


def submit_and_wait(drv, button_css):
    """Click a submit button and wait until the page it belonged to is gone.

    While Chromium swaps documents, asking about the old node can fail with errors other than
    "stale element" (for example "Node with given id does not belong to the document"); those
    mean "not settled yet", so the wait asks again instead of failing.
    """
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait
    button = drv.find_element(by("CSS_SELECTOR"), button_css)
    button.click()

    def old_page_gone(_):
        try:
            button.is_enabled()
        except StaleElementReferenceException:
            return True
        return False

    WebDriverWait(drv, 20, ignored_exceptions=(WebDriverException,)).until(old_page_gone)
    wait_for(drv, "body")


def fetch_text(drv, path):
    """A file the signed-in browser downloads (same-origin fetch, with its cookie)."""
    return drv.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {credentials: 'same-origin'})"
        ".then(r => r.text().then(t => done([r.status, t])));", path)


def images_loaded(drv, css, first=4, timeout=20):
    """Whether the first images matching ``css`` loaded (a real picture, not a broken one)."""
    from selenium.webdriver.support.ui import WebDriverWait
    script = ("return Array.from(document.querySelectorAll(arguments[0])).slice(0, arguments[1])"
              ".map(i => i.complete && i.naturalWidth > 0);")
    try:
        WebDriverWait(drv, timeout).until(lambda d: all(d.execute_script(script, css, first)))
    except Exception:  # noqa: BLE001 - the assertion below reports which ones failed
        pass
    return drv.execute_script(script, css, first)


def sign_in(drv, base, token):
    drv.delete_all_cookies()
    drv.get(f"{base}/signin?token={token}")
    wait_for(drv, "#rate-entities")


def read(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def site(demo_build, tmp_path_factory):
    db = tmp_path_factory.mktemp("browser") / "ratings.sqlite"
    ex = Explorer(Settings(data_dir=str(demo_build.out), db_url=f"sqlite:///{db}",
                           predictions=str(demo_build.run / "predictions.csv")))
    ex.prepare()
    tokens = {"admin": ex.store.add_rater("admin", admin=True)}
    for name in ("rita", "raj", "rosa"):
        tokens[name] = ex.store.add_rater(name)
    with served(create_app(ex)) as base:
        yield base, ex, tokens, str(db)
    ex.close()


def test_browse_search_entity_rate_export_vocab_rate_videos_evaluate(browser, site, demo_build,
                                                                     tmp_path):
    base, ex, tokens, db = site
    drv = browser
    # -- browse: the 24 verticals, then one of them ----------------------------------
    drv.get(base + "/")
    rows = drv.find_elements(by("CSS_SELECTOR"), "#verticals tbody tr")
    assert len(rows) == 24
    drv.find_element(by("LINK_TEXT"), "Science").click()
    wait_for(drv, "table.entities")
    assert "Concentric rings" in drv.page_source
    # -- search, then the entity's page --------------------------------------------
    box = drv.find_element(by("ID"), "q")
    box.clear()
    box.send_keys("ring")
    submit_and_wait(drv, "form.search button")
    assert "2 entities matching" in drv.find_element(by("ID"), "result-count").text
    assert {"Yellow ring", "Concentric rings"} <= {
        a.text for a in drv.find_elements(by("CSS_SELECTOR"), "a.entity")}
    box = drv.find_element(by("ID"), "q")
    box.clear()
    box.send_keys("shap")
    submit_and_wait(drv, "form.search button")
    assert "1 entity matching" in drv.find_element(by("ID"), "result-count").text
    drv.find_element(by("LINK_TEXT"), "Shape").click()
    assert wait_for(drv, "#entity-name").text == "Shape"
    assert "Reference" in drv.page_source and "withheld" in drv.page_source
    cards = drv.find_elements(by("CSS_SELECTOR"), "#video-grid .card")
    assert cards and all(images_loaded(drv, "#video-grid img"))
    cards[0].click()
    wait_for(drv, ".frames img")
    assert all(images_loaded(drv, ".frames img"))
    assert drv.find_elements(by("CSS_SELECTOR"), "#labels a")

    # -- rate every entity as three raters ------------------------------------------
    catalog = {r["kg_id"] for r in read(demo_build.out / "private" / "inputs" / "entities.csv")}
    for k, name in enumerate(("rita", "raj", "rosa")):
        sign_in(drv, base, tokens[name])
        drv.find_element(by("ID"), "rate-entities").click()
        rated = []
        while True:
            wait_for(drv, "#entity-form, #no-task")
            if drv.find_elements(by("ID"), "no-task"):
                break
            kg = drv.find_element(by("CSS_SELECTOR"), "input[name=kg_id]").get_attribute("value")
            score = SCORES[len(kg) % 3][k]
            drv.find_element(by("CSS_SELECTOR"), f"input[name=score][value='{score}']").click()
            submit_and_wait(drv, "#submit-rating")
            rated.append(kg)
        assert sorted(rated) == sorted(catalog), name
    # -- export as the admin, in the browser ---------------------------------------
    sign_in(drv, base, tokens["admin"])
    drv.get(base + "/admin")
    assert f"{3 * len(catalog)} ratings" in drv.find_element(by("TAG_NAME"), "main").text
    status, text = fetch_text(drv, "/admin/export/ratings.csv")
    assert status == 200 and text.splitlines()[0] == "kg_id,rater_id,score"
    ratings = tmp_path / "ratings.csv"
    ratings.write_text(text)
    assert len(read(ratings)) == 3 * len(catalog)
    # ... the same file as the command line export.
    cli_out = tmp_path / "cli_ratings.csv"
    assert run_pipeline.main(["ratings", "export", "--entities", "--db", db,
                              "--output", str(cli_out)]) == 0
    assert cli_out.read_text() == text
    # -- vocab with the exported ratings ---------------------------------------------
    inputs = demo_build.out / "private" / "inputs"
    out2 = tmp_path / "vocab"
    assert run_pipeline.main(["vocab", "--videos", str(inputs / "manifest.csv"),
                              "--entities", str(inputs / "entities.csv"), "--ratings",
                              str(ratings), "--output_dir", str(out2), *DEMO_VOCAB_FLAGS]) == 0
    vocab = {r["KnowledgeGraphId"]: r["Specificity"] for r in read(out2 / "vocabulary.csv")}
    assert vocab and all(vocab.values())
    assert "/m/demo_moire" not in vocab and "/m/demo_podcast" not in vocab

    # -- rate the sampled test videos as three raters ------------------------------
    test_labels = {r["video_id"]: r["labels"].split(";") for r in
                   read(demo_build.out / "private" / "test_labels.csv")}
    kg_of = {r["Index"]: r["KnowledgeGraphId"] for r in read(demo_build.out / "vocabulary.csv")}
    for k, name in enumerate(("rita", "raj", "rosa")):
        sign_in(drv, base, tokens[name])
        drv.find_element(by("ID"), "rate-videos").click()
        done = 0
        while True:
            wait_for(drv, "#video-form, #no-task")
            if drv.find_elements(by("ID"), "no-task"):
                break
            vid = drv.find_element(by("CSS_SELECTOR"),
                                   "input[name=video_id]").get_attribute("value")
            truth = [kg_of[i] for i in test_labels[vid]]
            boxes = {b.get_attribute("value"): b for b in
                     drv.find_elements(by("CSS_SELECTOR"), "#candidates input[name=kg]")}
            assert set(truth) <= set(boxes)
            boxes[truth[0]].click()
            if k == 0:
                # An entity not among the candidates, found with the search box.
                missing = next(kg for kg in kg_of.values() if kg not in boxes)
                name_of = ex.index.entity(missing)["name"]
                search = drv.find_element(by("ID"), "entity-search")
                search.send_keys(name_of)
                button = wait_for(drv, f"#entity-results button[data-kg='{missing}']")
                button.click()
                added = drv.find_element(by("CSS_SELECTOR"),
                                         f"#candidates input[value='{missing}']")
                assert added.is_selected()
            submit_and_wait(drv, "#submit-video")
            done += 1
        assert done == 2, name
    # -- export the human labels and evaluate the baseline on them ----------------
    sign_in(drv, base, tokens["admin"])
    drv.get(base + "/admin")
    status, text = fetch_text(drv, "/admin/export/human_labels.csv")
    assert status == 200
    human = tmp_path / "human_labels.csv"
    human.write_text(text)
    rows = read(human)
    assert len(rows) == 2
    for r in rows:       # the majority of 3 is the label all three marked
        assert r["kg_ids"] == kg_of[test_labels[r["video_id"]][0]]
    metrics_path = tmp_path / "metrics.json"
    assert run_pipeline.main(["evaluate", "--model_dir", str(demo_build.run), "--data_dir",
                              str(demo_build.out), "--human_labels", str(human), "--output",
                              str(metrics_path)]) == 0
    metrics = json.loads(metrics_path.read_text())
    assert metrics["human_rated"]["num_examples"] == 2
    assert {"perr", "hit_at_1", "hit_at_5"} <= set(metrics["human_rated"])
    # The admin's report shows the raters' figures.
    drv.get(base + "/admin")
    assert "precision" in drv.find_element(by("ID"), "report").text


def test_non_admin_browser_sees_no_test_labels(browser, site, demo_build):
    base, ex, tokens, _ = site
    drv = browser
    sign_in(drv, base, tokens["rita"])
    test = read(demo_build.out / "private" / "test_labels.csv")
    vid = next(r["video_id"] for r in test if ex.index.split_of(r["video_id"]) == "test")
    drv.get(f"{base}/video/{vid}")
    assert drv.find_element(by("ID"), "labels-withheld")
    assert not drv.find_elements(by("ID"), "labels")
    drv.get(base + "/admin")
    assert "403" in drv.find_element(by("TAG_NAME"), "h1").text
