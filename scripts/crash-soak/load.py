#!/usr/bin/env python3
"""The crash soak's load generator and its final count (scripts/crash-soak.sh).

  load.py run --base URL --site ID --domain D --key KEY --cycle N --state DIR
      Ingestion load against a running server until it disappears (it is killed with
      SIGKILL by the caller) or --max-seconds pass: tracked pageviews and custom events through
      POST /api/collect on several keep-alive connections, and imports through
      POST /api/v1/websites/{id}/events, half of them with an Idempotency-Key. Every event
      carries a unique marker, /soak/c<cycle>/<worker>/<n>: the path of a pageview, the prop
      `marker` of a custom event (whose path is not stored). Before the load, the
      keyed imports of earlier cycles that got no answer are sent again with the same key and
      body, and a few acknowledged ones are replayed (their answer must be the first one).

  load.py settle ...   (same options): only the resending, against a server that stays up.

  load.py verify --state DIR --export FILE
      Counts the markers of an NDJSON export against what the server acknowledged.

What is written to the state directory (appended by each cycle):
  acked.txt     markers of acknowledged events: 202 without X-Jetrack-Dropped from collect,
                the accepted events of a 200 import
  unknown.txt   markers of requests that were sent but got no answer (the kill): they may or
                may not be stored
  refused.txt   markers answered with anything else (429, 503, a drop, a refused event)
  pending.jsonl keyed imports still without an answer (rewritten by each run)
  replay.jsonl  a few acknowledged keyed imports with their answer (rewritten by each run)
  problems.txt  anything that must not happen (a replay that answers differently, a status
                that makes no sense); verify fails when it is not empty
Standard library only.
"""

import argparse
import datetime
import http.client
import json
import os
import random
import sys
import threading
import time
import urllib.parse
from collections import Counter

USER_AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0.0.0 Safari/537.36 Edg/130.0.0.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (iPad; CPU OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.7 Mobile/15E148 Safari/604.1",
]
# Documentation address ranges (RFC 5737): many visitors, none of them over the per-visitor
# limit.
NETS = ["192.0.2.", "198.51.100.", "203.0.113."]
REFERRERS = [None, None, "https://news.example.org/", "https://www.google.com/",
             "https://social.example.net/post/1"]
EVENT_NAMES = ["Signup", "Download", "Play"]


class Gone(Exception):
    """The server refuses connections: it is not running any more."""


class Client:
    """One keep-alive HTTP/1.1 connection; tells apart "not sent" and "no answer"."""

    def __init__(self, host, port):
        self.host, self.port = host, port
        self.conn = None

    def send(self, method, path, body, headers):
        """(status, headers, body) or None when the request went out and no answer came.
        Raises Gone when no connection can be made (the request was not sent)."""
        if self.conn is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            try:
                conn.connect()
            except OSError as e:
                raise Gone(str(e)) from e
            self.conn = conn
        try:
            self.conn.request(method, path, body=body, headers=headers)
            resp = self.conn.getresponse()
            data = resp.read()
            if resp.getheader("Connection", "").lower() == "close":
                self.close()
            return resp.status, resp, data
        except (OSError, http.client.HTTPException):
            self.close()
            return None

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class Tally:
    """What one worker saw; merged by the main thread at the end."""

    def __init__(self):
        self.acked, self.unknown, self.refused = [], [], []
        self.statuses = Counter()
        self.problems = []
        self.pending = []  # keyed imports without an answer
        self.replayable = []  # keyed imports acknowledged, with their answer
        self.requests = 0


def iso(ms):
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def collect_worker(args, name, stop, tally, rng):
    client = Client(args.host, args.port)
    n = 0
    while not stop.is_set():
        n += 1
        marker = f"/soak/c{args.cycle}/{name}/{n}"
        body = {"type": "pageview", "websiteId": args.site,
                "url": f"https://{args.domain}{marker}", "screenWidth": rng.choice([390, 1280, 1920]),
                "language": rng.choice(["en-US", "de-DE", "fr-FR"])}
        if rng.random() < 0.25:
            body["type"] = "event"
            body["name"] = rng.choice(EVENT_NAMES)
            body["props"] = {"plan": rng.choice(["free", "pro"]), "marker": marker}
        referrer = rng.choice(REFERRERS)
        if referrer:
            body["referrer"] = referrer
        headers = {
            "Content-Type": "text/plain;charset=UTF-8",
            "User-Agent": rng.choice(USER_AGENTS),
            "X-Forwarded-For": rng.choice(NETS) + str(rng.randint(1, 254)),
        }
        try:
            answer = client.send("POST", "/api/collect", json.dumps(body), headers)
        except Gone:
            break
        tally.requests += 1
        if answer is None:
            tally.statuses["no answer"] += 1
            tally.unknown.append(marker)
            continue
        status, resp, data = answer
        tally.statuses[str(status)] += 1
        dropped = resp.getheader("X-Jetrack-Dropped")
        if status == 202 and not dropped:
            tally.acked.append(marker)
        else:
            tally.refused.append(marker)
            if status == 202:
                tally.statuses["202 dropped " + dropped] += 1
            elif status not in (429, 503):
                tally.problems.append(f"collect {marker}: {status} {data[:200]!r}")
    client.close()


def import_batch(args, name, b, rng):
    """A keyed or unkeyed import of 1 to 40 events, each with its marker."""
    now = int(time.time() * 1000)
    visitor = f"soak-c{args.cycle}-{name}-{b}"
    start = now - rng.randint(60_000, 3_600_000)
    events, markers = [], []
    for i in range(rng.randint(1, 40)):
        marker = f"/soak/c{args.cycle}/{name}/{b}-{i}"
        event = {"type": "pageview", "url": f"https://{args.domain}{marker}",
                 "timestamp": iso(start + i * 7_000), "visitorId": visitor}
        if i > 0 and rng.random() < 0.3:
            event["type"] = "event"
            event["name"] = rng.choice(EVENT_NAMES)
            event["props"] = {"source": "import", "marker": marker}
        events.append(event)
        markers.append(marker)
    key = f"soak-c{args.cycle}-{name}-{b}" if rng.random() < 0.5 else None
    return {"key": key, "body": json.dumps({"events": events}), "markers": markers}


def send_import(args, client, item):
    """Sends one import; (status, answer data) or None without an answer. Raises Gone."""
    headers = {"Content-Type": "application/json", "X-API-Key": args.key}
    if item["key"]:
        headers["Idempotency-Key"] = item["key"]
    answer = client.send("POST", f"/api/v1/websites/{args.site}/events", item["body"], headers)
    if answer is None:
        return None
    status, _resp, data = answer
    try:
        parsed = json.loads(data)
    except ValueError:
        parsed = {"unreadable": data[:200].decode("utf-8", "replace")}
    return status, parsed


def record_import(tally, item, answer, what):
    """Sorts an import's markers by its answer."""
    status, parsed = answer
    tally.statuses[f"import {status}"] += 1
    if status != 200:
        tally.refused.extend(item["markers"])
        if status not in (429, 503):
            tally.problems.append(f"{what} {item['key']}: {status} {parsed}")
        return
    data = parsed.get("data", {})
    dropped = {d.get("index") for d in data.get("dropped", [])}
    for i, marker in enumerate(item["markers"]):
        (tally.refused if i in dropped else tally.acked).append(marker)
    if data.get("accepted") != len(item["markers"]) - len(dropped):
        tally.problems.append(f"{what} {item['key']}: accepted {data.get('accepted')} of "
                              f"{len(item['markers'])} with {len(dropped)} dropped")
    if dropped:
        tally.problems.append(f"{what} {item['key']}: events refused: {data.get('dropped')}")
    if item["key"]:
        tally.replayable.append(dict(item, answer=data))


def import_worker(args, name, stop, tally, rng):
    client = Client(args.host, args.port)
    b = 0
    while not stop.is_set():
        b += 1
        item = import_batch(args, name, b, rng)
        try:
            answer = send_import(args, client, item)
        except Gone:
            break
        tally.requests += 1
        if answer is None:
            tally.statuses["import no answer"] += 1
            tally.unknown.extend(item["markers"])
            if item["key"]:
                tally.pending.append(item)
            continue
        record_import(tally, item, answer, "import")
    client.close()


def resend(args, tally, rng):
    """Keyed imports that got no answer, sent again as they were: each is then stored once,
    whether or not the first attempt was. And a few acknowledged ones, whose answer must be
    the first. Returns False when the server went away meanwhile."""
    pending = read_jsonl(os.path.join(args.state, "pending.jsonl"))
    replays = read_jsonl(os.path.join(args.state, "replay.jsonl"))
    client = Client(args.host, args.port)
    up = True
    for item in pending:
        answer = None
        if up:
            try:
                answer = send_import(args, client, item)
            except Gone:
                up = False
        if answer is None:
            tally.pending.append(item)  # still unknown; its markers are in unknown.txt
            continue
        tally.statuses["resent"] += 1
        record_import(tally, item, answer, "resent import")
    for item in replays:
        if not up:
            break
        try:
            answer = send_import(args, client, item)
        except Gone:
            up = False
            break
        if answer is None:
            continue
        status, parsed = answer
        tally.statuses["replayed"] += 1
        if status != 200 or parsed.get("data") != item["answer"]:
            tally.problems.append(f"replayed import {item['key']}: {status} {parsed}, "
                                  f"first answer {item['answer']}")
    client.close()
    return up


def read_jsonl(path):
    try:
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def write_jsonl(path, items):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for item in items:
            f.write(json.dumps(item) + "\n")
    os.replace(tmp, path)


def append_lines(path, lines):
    with open(path, "a", encoding="utf-8") as f:
        for line in lines:
            f.write(line + "\n")


def run(args, load):
    url = urllib.parse.urlsplit(args.base)
    args.host, args.port = url.hostname, url.port
    rng = random.Random(args.seed)
    started = time.monotonic()
    first = Tally()
    up = resend(args, first, rng)
    tallies = [first]
    if load and up:
        stop = threading.Event()
        threads = []
        for kind, count, target in (("w", args.collect_workers, collect_worker),
                                    ("i", args.import_workers, import_worker)):
            for w in range(count):
                tally = Tally()
                tallies.append(tally)
                seed = rng.random()
                threads.append(threading.Thread(
                    target=target, args=(args, f"{kind}{w}", stop, tally, random.Random(seed)),
                    daemon=True))
        for t in threads:
            t.start()
        deadline = started + args.max_seconds
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        if any(t.is_alive() for t in threads):
            stop.set()
            first.problems.append(f"cycle {args.cycle}: the server was still up after "
                                  f"{args.max_seconds} s of load")
            for t in threads:
                t.join(60)
    total = Tally()
    for t in tallies:
        for field in ("acked", "unknown", "refused", "problems", "pending", "replayable"):
            getattr(total, field).extend(getattr(t, field))
        total.statuses.update(t.statuses)
        total.requests += t.requests
    state = args.state
    append_lines(os.path.join(state, "acked.txt"), total.acked)
    append_lines(os.path.join(state, "unknown.txt"), total.unknown)
    append_lines(os.path.join(state, "refused.txt"), total.refused)
    append_lines(os.path.join(state, "problems.txt"), total.problems)
    write_jsonl(os.path.join(state, "pending.jsonl"), total.pending)
    rng.shuffle(total.replayable)
    write_jsonl(os.path.join(state, "replay.jsonl"), total.replayable[:3])
    statuses = ", ".join(f"{k}: {v}" for k, v in sorted(total.statuses.items()))
    print(f"{total.requests} requests in {time.monotonic() - started:.2f} s, "
          f"acked {len(total.acked)}, unknown {len(total.unknown)}, "
          f"refused {len(total.refused)}, keyed imports pending {len(total.pending)}, "
          f"problems {len(total.problems)} ({statuses})")


def verify(args):
    def lines(name):
        try:
            with open(os.path.join(args.state, name), encoding="utf-8") as f:
                return [line.rstrip("\n") for line in f if line.strip()]
        except FileNotFoundError:
            return []

    acked = lines("acked.txt")
    acked_set = set(acked)
    unknown = set(lines("unknown.txt")) - acked_set
    refused = set(lines("refused.txt")) - acked_set - unknown
    problems = lines("problems.txt")
    stored = Counter()
    with open(args.export, encoding="utf-8") as f:
        for line in f:
            event = json.loads(line)
            if event.get("type") == "heartbeat":
                continue
            if event.get("type") == "event":
                marker = (event.get("props") or {}).get("marker", "")
            else:
                marker = urllib.parse.urlsplit(event["url"]).path
            if marker.startswith("/soak/"):
                stored[marker] += 1
    missing = [m for m in acked_set if stored[m] == 0]
    duplicated = [m for m, n in stored.items() if n > 1]
    strangers = [m for m in stored if m not in acked_set and m not in unknown
                 and m not in refused]
    refused_stored = [m for m in refused if stored[m] > 0]
    unknown_stored = sum(1 for m in unknown if stored[m] > 0)
    report = {
        "acknowledged": len(acked_set),
        "acknowledged twice": len(acked) - len(acked_set),
        "unknown": len(unknown),
        "unknown stored": unknown_stored,
        "refused": len(refused),
        "refused but stored": len(refused_stored),
        "stored markers": sum(stored.values()),
        "missing": len(missing),
        "duplicated": len(duplicated),
        "never sent but stored": len(strangers),
        "problems": len(problems),
    }
    for k, v in report.items():
        print(f"  {k + ':':24} {v}")
    for title, items in (("missing", missing), ("duplicated", duplicated),
                         ("never sent but stored", strangers),
                         ("refused but stored", refused_stored), ("problems", problems)):
        for m in sorted(items)[:20]:
            print(f"  {title}: {m}", file=sys.stderr)
    bad = (missing or duplicated or strangers or refused_stored or problems
           or len(acked) != len(acked_set))
    return 1 if bad else 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("run", "settle"):
        r = sub.add_parser(name)
        r.add_argument("--base", required=True)
        r.add_argument("--site", required=True)
        r.add_argument("--domain", required=True)
        r.add_argument("--key", required=True)
        r.add_argument("--cycle", type=int, required=True)
        r.add_argument("--state", required=True)
        r.add_argument("--seed", type=int, default=None)
        r.add_argument("--collect-workers", type=int, default=6)
        r.add_argument("--import-workers", type=int, default=2)
        r.add_argument("--max-seconds", type=float, default=60.0)
    v = sub.add_parser("verify")
    v.add_argument("--state", required=True)
    v.add_argument("--export", required=True)
    args = p.parse_args()
    if args.command == "verify":
        sys.exit(verify(args))
    run(args, load=args.command == "run")


if __name__ == "__main__":
    main()
