"""The explorer under load (loopback only) and its start-up on large builds.

Load: ``run_pipeline.py serve`` in a child process on 127.0.0.1, rating a
generated catalog (no build: ``--entities``); N concurrent raters (threads,
one keep-alive connection each) ask for a task and rate it until T ratings
are acknowledged or the time limit passes. Then the database is checked: every
acknowledged rating is there once, nothing else is, no entity has more than 3
ratings, no rater rated an entity twice. References, measured in the same run:

- server CPU per rating: the CPU seconds the server process spent (from
  /proc, between ready and done) per acknowledged rating, against the CPU
  seconds per rating of the same claims and ratings made in-process by one
  rater after another on a fresh database (``tasks.Store``, no HTTP): the
  database work alone. CPU time, not wall time, because the machine is
  shared: other work slows both phases unevenly, but not the CPU a rating
  costs. Target <= 4: a rating is two HTTP requests (task, rating), each
  parsed, authenticated (a token lookup: one more read) and answered as JSON
  around the same two write transactions; the HTTP stack may cost up to three
  times the database work, more would mean the server spends its time on
  something else.
- throughput (ratings/s, wall) against the in-process sequential rate:
  informational (``met`` None), the other load of a shared machine decides it.
- p95 latency of a rating: against the p95 of ``/healthz`` (no database) at
  the same concurrency, the bare HTTP round trip. Informational.
- lost or duplicated ratings: target 0.

Start-up: the index of a build with R rows in ``splits.csv`` is built once
(cold) and reused while the files are unchanged (warm). References: reading
the same CSV alone (rows per CPU-second; informational), and the cold build's
time (warm / cold, target <= 0.05: a warm start does not grow with the build).
"""
from __future__ import annotations

import csv
import http.client
import ipaddress
import json
import os
import random
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
CPU_TARGET = 4.0
WARM_TARGET = 0.05


def _figure(name, value, unit, reference, reference_value, ratio, target, met, **extra):
    d = {"name": name, "value": value, "unit": unit, "reference": reference,
         "reference_value": reference_value, "ratio": ratio, "target": target, "met": met}
    d.update(extra)
    return d


def write_catalog(path: str, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    from yt8m.explorer.verticals import TOP_LEVEL
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["kg_id", "name", "types", "vertical", "description", "wiki_url"])
        for i in range(n):
            w.writerow([f"/m/load{i:06d}", f"Entity {i}", "Visual Object",
                        rng.choice(TOP_LEVEL), f"Generated entity {i}.", ""])


def _check_loopback(base_url: str) -> tuple[str, int]:
    """Host and port of ``base_url``; refuses anything but the loopback address."""
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False        # a name other than localhost: never resolved, refused
    if not loopback:
        raise ValueError(f"the load test only targets the loopback address, not {host!r}")
    return host, parts.port or 80


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``run_pipeline.py serve`` in a child process, on 127.0.0.1."""

    def __init__(self, catalog: str, db: str, lease_s: float = 600.0):
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.db = db
        argv = [sys.executable, str(ROOT / "run_pipeline.py"), "serve", "--entities", catalog,
                "--db", db, "--host", "127.0.0.1", "--port", str(self.port),
                "--lease_s", str(lease_s)]
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(argv, cwd=str(ROOT), stdout=self.log, stderr=self.log,
                                     env=dict(os.environ, PYTHONPATH=str(ROOT)))

    def wait_ready(self, timeout: float = 120.0) -> float:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited with {self.proc.returncode}: {self.output()}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/healthz")
                body = json.loads(conn.getresponse().read())
                conn.close()
                if body.get("ready"):
                    return time.monotonic() - t0
                if body.get("error"):
                    raise RuntimeError(body["error"])
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        raise TimeoutError(f"serve was not ready after {timeout} s: {self.output()}")

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of the server process so far (Linux /proc)."""
        with open(f"/proc/{self.proc.pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")[-3000:]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


def _p(values, q):
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))]


def load(base_url: str, tokens: list[str], target: int, time_limit_s: float,
         seed: int = 0) -> dict:
    """Raters (one thread each) rate entity tasks over HTTP until ``target`` ratings.

    Bounded: stops at ``target`` acknowledged ratings, at ``time_limit_s``, or
    when no task is left. Only the loopback address.
    """
    host, port = _check_loopback(base_url)
    lock = threading.Lock()
    acked: list[tuple[str, str, int]] = []
    latencies: list[float] = []
    errors: list[str] = []
    unknown: list[tuple[str, str]] = []
    deadline = time.monotonic() + time_limit_s

    def worker(i: int, token: str) -> None:
        rng = random.Random(f"{seed}:{i}")
        conn = http.client.HTTPConnection(host, port, timeout=60)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

        def post(path, body=None):
            conn.request("POST", path, body=json.dumps(body) if body is not None else b"",
                         headers=headers)
            r = conn.getresponse()
            return r.status, r.read()

        try:
            while time.monotonic() < deadline:
                with lock:
                    if len(acked) >= target:
                        return
                status, body = post("/api/tasks/entity")
                if status != 200:
                    errors.append(f"task: {status} {body[:200]!r}")
                    return
                task = json.loads(body)["task"]
                if task is None:
                    return
                score = rng.randint(1, 5)
                t0 = time.perf_counter()
                try:
                    status, body = post("/api/ratings/entity", {"kg_id": task["kg_id"],
                                                                "score": score})
                except (OSError, http.client.HTTPException) as e:
                    # No answer: the rating may or may not have been written.
                    unknown.append((f"r{i}", task["kg_id"]))
                    errors.append(f"rating: {type(e).__name__}: {e}")
                    conn.close()
                    conn = http.client.HTTPConnection(host, port, timeout=60)
                    continue
                dt = time.perf_counter() - t0
                with lock:
                    latencies.append(dt)
                    if status == 201:
                        acked.append((f"r{i}", task["kg_id"], score))
                    else:
                        errors.append(f"rating: {status} {body[:200]!r}")
        finally:
            conn.close()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i, t), daemon=True)
               for i, t in enumerate(tokens)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(time_limit_s + 120)
    seconds = time.perf_counter() - t0
    return {"acked": acked, "latencies": latencies, "errors": errors, "unknown": unknown,
            "seconds": seconds, "stopped_by_time": time.monotonic() >= deadline}


def healthz_latency(base_url: str, concurrency: int, per_thread: int) -> list[float]:
    host, port = _check_loopback(base_url)
    out: list[float] = []
    lock = threading.Lock()

    def worker():
        conn = http.client.HTTPConnection(host, port, timeout=60)
        for _ in range(per_thread):
            t0 = time.perf_counter()
            conn.request("GET", "/healthz")
            conn.getresponse().read()
            with lock:
                out.append(time.perf_counter() - t0)
        conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    return out


def verify(db: str, acked, unknown, names: dict) -> dict:
    """What the database holds against what the server acknowledged."""
    con = sqlite3.connect(db)
    rows = con.execute("SELECT r.kg_id, t.name, r.score FROM entity_ratings r "
                       "JOIN raters t ON t.id = r.rater_id").fetchall()
    per_entity = con.execute("SELECT MAX(n) FROM (SELECT COUNT(*) AS n FROM entity_ratings "
                             "GROUP BY kg_id)").fetchone()[0] or 0
    con.close()
    stored = [(names[n], kg, s) for kg, n, s in rows]
    stored_keys = [(r, kg) for r, kg, _ in stored]
    acked_set = set(acked)
    unknown_set = set(unknown)
    lost = [a for a in acked if a not in set(stored)]
    extra = [s for s in stored if s not in acked_set and (s[0], s[1]) not in unknown_set]
    return {"stored": len(stored), "acked": len(acked), "lost": len(lost),
            "duplicated": len(stored_keys) - len(set(stored_keys)),
            "unacknowledged_stored": len(extra), "max_ratings_per_entity": int(per_entity)}


def direct_rate(db_path: str, n_entities: int, n_raters: int, n_ratings: int) -> dict:
    """Ratings/s and CPU s per rating of the same claims and ratings made in-process,
    one after the other."""
    from yt8m.explorer import db as D
    from yt8m.explorer.tasks import Store
    database = D.Database(D.sqlite_url(db_path))
    database.create()
    store = Store(database)
    store.ensure_entity_tasks([f"/m/load{i:06d}" for i in range(n_entities)])
    raters = [store.rater_by_token(store.add_rater(f"d{i}")) for i in range(n_raters)]
    rng = random.Random(0)
    done = 0
    t0, c0 = time.perf_counter(), time.process_time()
    while done < n_ratings:
        r = raters[done % n_raters]
        kg = store.next_entity_task(r)
        if kg is None:
            break
        store.rate_entity(r, kg, rng.randint(1, 5))
        done += 1
    secs, cpu = time.perf_counter() - t0, time.process_time() - c0
    database.dispose()
    return {"ratings_per_s": done / secs, "cpu_per_rating": cpu / done}


def run_load(work: str, raters: int, ratings: int, time_limit_s: float) -> dict:
    """One bounded load test; returns its measurements and the database check."""
    from yt8m.explorer import db as D
    from yt8m.explorer.tasks import Store
    n_entities = -(-ratings // 3) + raters          # enough tasks for the target
    catalog = os.path.join(work, "catalog.csv")
    write_catalog(catalog, n_entities)
    db = os.path.join(work, "load.sqlite")
    database = D.Database(D.sqlite_url(db))
    database.create()
    store = Store(database)
    tokens, names = [], {}
    for i in range(raters):
        tokens.append(store.add_rater(f"r{i}"))
        names[f"r{i}"] = f"r{i}"
    database.dispose()
    server = Server(catalog, db)
    try:
        ready_s = server.wait_ready()
        cpu0 = server.cpu_seconds()
        result = load(server.base, tokens, ratings, time_limit_s)
        server_cpu = server.cpu_seconds() - cpu0
        health = healthz_latency(server.base, raters, max(4, 400 // raters))
    finally:
        server.stop()
    check = verify(db, result["acked"], result["unknown"], names)
    return {**result, "check": check, "health": health, "ready_s": ready_s,
            "entities": n_entities, "server_cpu_s": server_cpu}


def _write_splits(folder: str, rows: int, n_entities: int = 2000) -> None:
    os.makedirs(os.path.join(folder, "private"), exist_ok=True)
    rng = random.Random(0)
    with open(os.path.join(folder, "vocabulary.csv"), "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["Index", "TrainVideoCount", "KnowledgeGraphId", "Name", "WikiUrl",
                    "Vertical1", "Vertical2", "Vertical3", "WikiDescription", "Specificity"])
        for i in range(n_entities):
            w.writerow([i, 0, f"/m/e{i}", f"Entity {i}", "", "Games", "", "", "", "coarse"])
    with open(os.path.join(folder, "splits.csv"), "w", newline="") as fs_, \
            open(os.path.join(folder, "private", "test_labels.csv"), "w", newline="") as ft:
        ws, wt = csv.writer(fs_), csv.writer(ft)
        ws.writerow(["video_id", "split", "labels"])
        wt.writerow(["video_id", "labels"])
        for i in range(rows):
            u = rng.random()
            split = "train" if u < 0.7 else "validate" if u < 0.9 else "test"
            labels = ";".join(str(min(n_entities - 1, int(rng.paretovariate(1.0)) - 1))
                              for _ in range(1 + (rng.random() < 0.8)))
            ws.writerow([f"v{i:08d}", split, "" if split == "test" else labels])
            if split == "test":
                wt.writerow([f"v{i:08d}", labels])


def run_index(work: str, rows: int) -> dict:
    from yt8m.explorer import source as S
    from yt8m.explorer.index import ensure_index
    folder = os.path.join(work, f"build{rows}")
    _write_splits(folder, rows)
    c0 = time.process_time()
    n = sum(1 for _ in S.read_csv(os.path.join(folder, "splits.csv")))
    parse_cpu = time.process_time() - c0
    sources = S.Sources.locate(folder)
    path = os.path.join(work, f"index{rows}.sqlite")
    c0 = time.process_time()
    cold = ensure_index(sources, path)
    cold_cpu = time.process_time() - c0
    warm = ensure_index(sources, path)
    assert warm["rebuilt"] == [] and n == rows
    return {"rows": rows, "parse_cpu": parse_cpu, "cold_cpu": cold_cpu,
            "cold_s": cold["seconds"], "warm_s": warm["seconds"]}


def run(quick: bool = False) -> list[dict]:
    raters, ratings = 50, (2000 if quick else 5000)
    limit = 240.0 if quick else 600.0
    figures = []
    with tempfile.TemporaryDirectory(prefix="yt8m-explorer-bench-") as work:
        # The reference before and after the load (averaged): the machine's other load
        # drifts during a run.
        before = direct_rate(os.path.join(work, "direct1.sqlite"), 400, raters, 400)
        res = run_load(work, raters, ratings, limit)
        after = direct_rate(os.path.join(work, "direct2.sqlite"), 400, raters, 400)
        direct = {k: (before[k] + after[k]) / 2 for k in before}
        check = res["check"]
        n = max(1, len(res["acked"]))
        rate = len(res["acked"]) / res["seconds"]
        cpu = res["server_cpu_s"] / n
        p95 = _p(res["latencies"], 0.95)
        p95_health = _p(res["health"], 0.95)
        size = f"{raters} raters, {len(res['acked'])} ratings"
        figures.append(_figure(
            "explorer_server_cpu_per_rating", round(1000 * cpu, 2), "ms CPU",
            "CPU per rating of the same claims + ratings in-process, no HTTP (ms)",
            round(1000 * direct["cpu_per_rating"], 2),
            round(cpu / direct["cpu_per_rating"], 2), f"<= {CPU_TARGET:g}",
            cpu / direct["cpu_per_rating"] <= CPU_TARGET, detail=size))
        figures.append(_figure(
            "explorer_ratings_per_s", round(rate, 1), "ratings/s",
            "the same claims + ratings in-process, sequential, no HTTP (ratings/s)",
            round(direct["ratings_per_s"], 1), round(rate / direct["ratings_per_s"], 3), None,
            None, detail=size, stopped_by_time=res["stopped_by_time"],
            errors=len(res["errors"]), serve_ready_s=round(res["ready_s"], 2)))
        figures.append(_figure(
            "explorer_rating_p95_ms", round(1000 * p95, 1), "ms",
            f"p95 of GET /healthz at the same concurrency ({raters} connections), ms",
            round(1000 * p95_health, 1), round(p95 / p95_health, 2), None, None,
            p50_ms=round(1000 * _p(res["latencies"], 0.5), 1), detail=size))
        bad = check["lost"] + check["duplicated"] + check["unacknowledged_stored"]
        figures.append(_figure(
            "explorer_lost_or_duplicated", bad, "ratings",
            "acknowledged ratings (stored, lost, duplicated, stored without acknowledgement)",
            check["acked"], round(bad / max(1, check["acked"]), 6), "== 0",
            bad == 0 and check["max_ratings_per_entity"] <= 3 and not res["errors"],
            check=check))
        for rows in ((200_000,) if quick else (200_000, 1_000_000)):
            ix = run_index(work, rows)
            label = f"{rows // 1000}k" if rows < 1_000_000 else f"{rows // 1_000_000}m"
            figures.append(_figure(
                f"explorer_index_rows_per_cpu_s_{label}", round(rows / ix["cold_cpu"]),
                "rows/CPU-s", "reading splits.csv alone (csv.DictReader), rows/CPU-s",
                round(rows / ix["parse_cpu"]), round(ix["parse_cpu"] / ix["cold_cpu"], 3), None,
                None, cold_s=round(ix["cold_s"], 2)))
            figures.append(_figure(
                f"explorer_warm_start_{label}", round(ix["warm_s"], 4), "s",
                f"building the index of {rows:,} rows (cold), s", round(ix["cold_s"], 2),
                round(ix["warm_s"] / ix["cold_s"], 5), f"<= {WARM_TARGET}",
                ix["warm_s"] / ix["cold_s"] <= WARM_TARGET))
    return figures


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
