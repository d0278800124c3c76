"""Helpers of the explorer's tests: a small fake build, a server on 127.0.0.1, the browser.

``write_fake_build`` writes the files a build leaves for the explorer (no
TFRecords: the explorer never reads them), with entities in several
verticals, train/validate/test videos, private test labels, a failed video,
a catalog with entities outside the vocabulary, a statistics plot and
thumbnails for some videos. Test videos are labelled with ``SECRET`` entities
as well, so that a test can look for any trace of a test label.
"""
from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

VERTICALS = {
    "/m/guitar": ("Guitar", "Arts & Entertainment", "", "coarse"),
    "/m/car": ("Car", "Autos & Vehicles", "", "coarse"),
    "/m/cake": ("Cake", "Food & Drink", "", "medium"),
    "/m/dog": ("Dog", "Pets & Animals", "", "coarse"),
    "/m/minecraft": ("Minecraft", "Games", "Computers & Electronics", "fine"),
    "/m/concert": ("Concert", "Arts & Entertainment", "", "coarse"),
    "/m/secret_a": ("Zanzibar lighthouse", "Travel", "", "fine"),
    "/m/secret_b": ("Quokka", "Pets & Animals", "", "medium"),
}
# Entities whose every video is a test video: any trace of them on a video's
# listing outside admin pages is a leak of test labels.
SECRET = ("/m/secret_a", "/m/secret_b")
CATALOG_EXTRA = {
    "/m/podcast": ("Podcast", "Audio Work", "Arts & Entertainment"),
    "/m/opera": ("Opera", "Visual Object", "Arts & Entertainment"),
    "/m/song": ("Song", "Music Composition", "Arts & Entertainment"),   # blacklisted type
}


@dataclass
class FakeBuild:
    out: Path
    vocabulary: dict                       # kg_id -> index
    videos: dict                           # video_id -> (split, [kg_id...])
    failed: list = field(default_factory=list)
    thumbnails: list = field(default_factory=list)

    def of_split(self, split):
        return sorted(v for v, (s, _) in self.videos.items() if s == split)

    @property
    def test_ids(self):
        return self.of_split("test")


def _tiny_png() -> bytes:
    import io

    from PIL import Image
    buf = io.BytesIO()
    Image.new("RGB", (40, 20), (200, 40, 40)).save(buf, format="PNG")
    return buf.getvalue()


def write_fake_build(out, n_train: int = 30, n_validate: int = 8, n_test: int = 6,
                     thumbnails: int = 10, seed: int = 0, blacklist=("Music Composition",)
                     ) -> FakeBuild:
    from yt8m.pipeline import thumbnails as TH
    out = Path(out)
    (out / "private" / "inputs").mkdir(parents=True, exist_ok=True)
    (out / "stats").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    public = [k for k in VERTICALS if k not in SECRET]
    weights = np.array([1.0 / (r + 1) for r in range(len(public))])
    weights /= weights.sum()
    videos: dict = {}
    for split, n in (("train", n_train), ("validate", n_validate), ("test", n_test)):
        for i in range(n):
            vid = f"{split[:2]}{i:03d}"
            k = 1 + int(rng.integers(0, 2))
            labels = sorted(set(rng.choice(public, size=k, p=weights).tolist()))
            if split == "test":
                labels = sorted(set(labels) | {SECRET[i % 2]})
            videos[vid] = (split, labels)
    counts = {k: sum(k in ls for _, ls in videos.values()) for k in VERTICALS}
    order = sorted(VERTICALS, key=lambda k: (-counts[k], k))
    vocabulary = {k: i for i, k in enumerate(order)}
    with open(out / "vocabulary.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["Index", "TrainVideoCount", "KnowledgeGraphId", "Name", "WikiUrl",
                    "Vertical1", "Vertical2", "Vertical3", "WikiDescription", "Specificity"])
        for k in order:
            name, v1, v2, spec = VERTICALS[k]
            train = sum(k in ls for s, ls in videos.values() if s == "train")
            w.writerow([vocabulary[k], train, k, name, f"https://en.wikipedia.org/wiki/{name}",
                        v1, v2, "", f"The entity {name}.", spec])
    failed = ["tr999"]
    with open(out / "splits.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["video_id", "split", "labels"])
        for vid, (split, labels) in videos.items():
            idx = ";".join(str(vocabulary[k]) for k in labels) if split != "test" else ""
            w.writerow([vid, split, idx])
        w.writerow(["tr999", "train", str(vocabulary["/m/guitar"])])
    with open(out / "private" / "test_labels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["video_id", "labels"])
        for vid, (split, labels) in videos.items():
            if split == "test":
                w.writerow([vid, ";".join(str(vocabulary[k]) for k in labels)])
    (out / "failures.jsonl").write_text(json.dumps(
        {"video_id": "tr999", "uri": "/nowhere/tr999.mp4", "stage": "decode", "kind": "missing",
         "error": "missing"}) + "\n")
    with open(out / "private" / "inputs" / "entities.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["kg_id", "name", "types", "vertical", "description", "wiki_url"])
        for k, (name, v1, v2, _) in VERTICALS.items():
            w.writerow([k, name, "Visual Object", ";".join(v for v in (v1, v2) if v),
                        f"The entity {name}.", f"https://en.wikipedia.org/wiki/{name}"])
        for k, (name, types, v) in CATALOG_EXTRA.items():
            w.writerow([k, name, types, v, f"The entity {name}.", ""])
    (out / "stats" / "selection.json").write_text(json.dumps({"config": {
        "type_whitelist": None, "type_blacklist": list(blacklist) or None}}))
    (out / "stats" / "statistics.json").write_text(json.dumps({
        "vocabulary_size": len(order), "split_sizes": {"train": n_train, "validate": n_validate,
                                                       "test": n_test},
        "labels_per_video": {"mean": 1.7}, "specificity": {}}))
    (out / "stats" / "figure6_verticals.png").write_bytes(_tiny_png())
    (out / "dataset_info.json").write_text(json.dumps({"cache_dir": str(out / "cache")}))
    made = []
    ids = sorted(videos)
    for vid in ids[:thumbnails] + build_test_ids(videos)[:2]:
        frames = [np.full((90, 160, 3), (30 * j) % 255, np.uint8) for j in range(3)]
        TH.write_thumbnails(str(out / "cache"), vid, frames, [0.0, 1.0, 2.0])
        made.append(vid)
    return FakeBuild(out=out, vocabulary=vocabulary, videos=videos, failed=failed,
                     thumbnails=made)


def build_test_ids(videos) -> list:
    return sorted(v for v, (s, _) in videos.items() if s == "test")


def make_explorer(build: FakeBuild, tmp, **settings):
    from yt8m.explorer.service import Explorer, Settings
    db = Path(tmp) / "ratings.sqlite"
    ex = Explorer(Settings(data_dir=str(build.out), db_url=f"sqlite:///{db}", **settings))
    ex.prepare()
    return ex


def client(explorer, token=None):
    from fastapi.testclient import TestClient

    from yt8m.explorer.app import create_app
    c = TestClient(create_app(explorer), base_url="http://127.0.0.1")
    if token:
        c.headers["Authorization"] = f"Bearer {token}"
    return c


@contextlib.contextmanager
def served(app):
    """``app`` under uvicorn on 127.0.0.1 (a free port) in a thread; yields the base URL."""
    import uvicorn
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_keep_alive=30,
                            backlog=512, limit_concurrency=1000)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(20)
        sock.close()


# --------------------------------------------------------------------------- browser

CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMEDRIVER = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")


def browser_paths():
    """(chromium, chromedriver) from Debian's packages, or a reason they are not usable."""
    binary = next((p for p in CHROMIUM if os.path.exists(p)), shutil.which("chromium"))
    driver = next((p for p in CHROMEDRIVER if os.path.exists(p)), shutil.which("chromedriver"))
    if not binary or not driver:
        return None, ("Chromium and its driver are not installed (apt-get install -y chromium "
                      "chromium-driver)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        return None, "selenium is not installed (pip install -e '.[test]')"
    return (binary, driver), None


def make_driver(binary: str, driver: str, width: int = 1280, height: int = 900):
    """Headless Chromium under Selenium, with the driver and browser named (no download)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", "--hide-scrollbars",
                "--force-device-scale-factor=1", "--disable-extensions", "--no-first-run"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=driver), options=opts)


def screenshot(drv, path, full_height: bool = True, width: int = 1280, max_height: int = 2400):
    """A PNG of the page; the window is grown to the page's height first."""
    if full_height:
        # Start small: a page is never shorter than the window it is measured in.
        drv.set_window_size(width, 600)
        for _ in range(2):   # the page may reflow at the new width
            h, chrome = drv.execute_script(
                "return [Math.max(document.body.scrollHeight, "
                "document.documentElement.scrollHeight), window.outerHeight - window.innerHeight];")
            drv.set_window_size(width, min(max_height, max(600, int(h) + int(chrome) + 4)))
    drv.save_screenshot(str(path))
