"""Screenshots of the explorer's main pages (headless Chromium), for docs/explorer.md.

    python -m tests.explorer.screenshots DATASET OUT_DIR [--predictions CSV]

DATASET is a build (e.g. the demo's: ``run_pipeline.py demo --output_dir demo_out`` makes
``demo_out/dataset``). A fresh ratings database in a temporary folder gets an admin and
three raters, who rate a few tasks first so that the progress and report pages show
something. The server runs on 127.0.0.1 only.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

from tests.explorer.helpers import browser_paths, make_driver, screenshot, served

PAGES_PUBLIC = [("home", "/"), ("search", "/search?q=ring"), ("entity", "/entity/m/demo_shape"),
                ("stats", "/stats")]
PAGES_ADMIN = [("rate_entity", "/rate/entity"), ("rate_video", "/rate/video"),
               ("admin", "/admin")]


def shrink(folder: str, colors: int = 96) -> None:
    """Palette PNGs: a page screenshot has few colours, so this keeps it small."""
    from PIL import Image
    for name in os.listdir(folder):
        if name.endswith(".png"):
            path = os.path.join(folder, name)
            with Image.open(path) as im:
                small = im.convert("RGB").quantize(colors=colors, dither=Image.Dither.NONE)
            small.save(path, optimize=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("dataset")
    p.add_argument("out_dir")
    p.add_argument("--predictions")
    p.add_argument("--width", type=int, default=1200)
    ns = p.parse_args(argv)
    from yt8m.explorer.app import create_app
    from yt8m.explorer.service import Explorer, Settings
    paths, why = browser_paths()
    if paths is None:
        print(why, file=sys.stderr)
        return 2
    os.makedirs(ns.out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        ex = Explorer(Settings(data_dir=ns.dataset, db_url=f"sqlite:///{tmp}/r.sqlite",
                               index_path=f"{tmp}/index.sqlite", predictions=ns.predictions))
        ex.prepare()
        admin = ex.store.add_rater("admin", admin=True)
        raters = [ex.store.rater_by_token(ex.store.add_rater(n)) for n in ("ana", "bo", "cy")]
        for k, r in enumerate(raters):
            for _ in range(6):
                kg = ex.store.next_entity_task(r)
                ex.store.rate_entity(r, kg, 1 + (k + len(kg)) % 3)
            vid = ex.store.next_video_task(r)
            truth = ex.index.test_label_ids(vid)
            kgs = [e["kg_id"] for e in ex.index.entities_by_idx(truth, include_test=True)]
            ex.store.rate_video(r, vid, kgs[:1], ex.known_kg_ids())
        drv = make_driver(*paths, width=ns.width)
        try:
            with served(create_app(ex)) as base:
                for name, path in PAGES_PUBLIC:
                    drv.get(base + path)
                    time.sleep(0.5)
                    screenshot(drv, os.path.join(ns.out_dir, f"{name}.png"), width=ns.width,
                               max_height=1500)
                first = next(iter(ex.index.entity_videos(ex.index.entity("/m/demo_shape")["idx"],
                                                         1)[0]))["video_id"]
                drv.get(f"{base}/video/{first}")
                time.sleep(0.5)
                screenshot(drv, os.path.join(ns.out_dir, "video.png"), width=ns.width)
                drv.get(f"{base}/signin?token={admin}")
                for name, path in PAGES_ADMIN:
                    drv.get(base + path)
                    time.sleep(0.5)
                    screenshot(drv, os.path.join(ns.out_dir, f"{name}.png"), width=ns.width,
                               max_height=1500)
        finally:
            drv.quit()
            ex.close()
    shrink(ns.out_dir)
    print(f"screenshots in {ns.out_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
