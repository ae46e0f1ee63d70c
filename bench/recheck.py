"""Benchmark: re-checking 2,000 known URLs on a local server, with validators (conditional GETs answered
304) and without (download + SHA-256), through ``urls_classify`` in batches of 100 like the API.

    .venv/bin/python bench/recheck.py [--urls 2000] [--batch 100] [--rounds 3]

Uses a temporary SQLite database and file cache (never the dev data); the picture server runs in its own
process so that it does not share our interpreter lock. Figures are medians of the rounds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
_tmp = tempfile.mkdtemp(prefix="spotcheck-bench-recheck-")
os.environ["SPOTCHECK_VAR_DIR"] = _tmp
os.environ.pop("DATABASE_URL", None)
os.environ.pop("REDIS_URL", None)
os.environ["SPOTCHECK_FETCH_ALLOW"] = "127.0.0.1/32"  # the server is on 127.0.0.1, port unknown (DEBUG stays on)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

DISTINCT = 20  # distinct pictures behind the URLs (listing sites reuse a lot)
LAST_MODIFIED = "Wed, 21 Oct 2026 07:28:00 GMT"


def serve(port_file: str) -> None:
    """Child mode: /v/<n>.jpg answers with ETag + Last-Modified (304 when they match), /n/<n>.jpg without."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import django

    django.setup()
    from classification.synthetic import PAINT, picture_bytes

    colours = list(PAINT)
    pictures = [
        picture_bytes(kind=("dealer", "stock")[i % 2], color=colours[i % len(colours)], seed=i, width=320, height=240)
        for i in range(DISTINCT)
    ]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as CDNs answer

        def log_message(self, *args):
            pass

        def do_GET(self):
            kind, _, name = self.path.strip("/").partition("/")
            try:
                n = int(name.removesuffix(".jpg"))
            except ValueError:
                self.send_error(404)
                return
            body = pictures[n % DISTINCT]
            if kind == "v":
                etag = f'"p{n % DISTINCT}"'
                if self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.end_headers()
                    return
                headers = {"ETag": etag, "Last-Modified": LAST_MODIFIED}
            else:
                headers = {}
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(body)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 512  # the listen backlog: the default 5 drops concurrent connects

    server = Server(("127.0.0.1", 0), Handler)
    Path(port_file).write_text(str(server.server_address[1]))
    server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--urls", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from classification.classifiers.builtin import BuiltinClassifier
    from classification.services import urls_classify

    call_command("migrate", verbosity=0)
    port_file = Path(_tmp) / "port"
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port_file)])
    try:
        deadline = time.monotonic() + 60
        while not port_file.exists() or not port_file.read_text():
            if time.monotonic() > deadline or server.poll() is not None:
                sys.exit("the picture server did not start")
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port_file.read_text()}"

        runs = []
        original = BuiltinClassifier.classify

        def counting(self, picture):
            runs.append(1)
            return original(self, picture)

        BuiltinClassifier.classify = counting

        def sweep(prefix: str) -> tuple[float, dict]:
            urls = [f"{base}/{prefix}/{i}.jpg" for i in range(args.urls)]
            started = time.perf_counter()
            outcomes = []
            for i in range(0, len(urls), args.batch):
                outcomes += urls_classify(urls=urls[i : i + args.batch])
            elapsed = time.perf_counter() - started
            summary = {
                "errors": sum(1 for o in outcomes if o.error),
                "first_error": next((o.error for o in outcomes if o.error), None),
                "answered": sum(1 for o in outcomes if o.values["image_type"]["source"] == "ml"),
            }
            return len(urls) / elapsed, summary

        from classification.models import ImageSource

        print(
            f"machine: {os.cpu_count()} cores (shared); {args.urls} URLs over {DISTINCT} pictures, batches of "
            f"{args.batch}, {settings.SPOTCHECK_FETCH_CONCURRENCY} concurrent downloads"
        )
        first_v, _ = sweep("v")  # first sight: downloads, classifies each distinct picture once
        first_n, _ = sweep("n")
        print(
            f"first sight (not a target): {first_v:,.0f} and {first_n:,.0f} URLs/s, "
            f"{len(runs)} classifications for {2 * args.urls} URLs"
        )
        runs.clear()

        figures = {}
        for prefix in ("v", "n"):
            rates, summaries = [], []
            for _ in range(args.rounds):
                rate, summary = sweep(prefix)
                rates.append(rate)
                summaries.append(summary)
            figures[prefix] = (statistics.median(rates), summaries[-1])
        statuses = dict(
            ImageSource.objects.filter(url__contains="/v/")
            .values_list("last_status")
            .distinct()
            .values_list("last_status", "last_status")
        )
        rate_v, sum_v = figures["v"]
        rate_n, sum_n = figures["n"]
        print()
        print(
            f"with validators (conditional GET)   {rate_v:>8,.0f} URLs/s   target >= 1,500 URLs/s; "
            f"last status {sorted(statuses)}, errors {sum_v['errors']} {sum_v['first_error'] or ''}, "
            f"answered {sum_v['answered']}"
        )
        print(
            f"without validators (download+hash)  {rate_n:>8,.0f} URLs/s   reported beside it; "
            f"errors {sum_n['errors']} {sum_n['first_error'] or ''}, answered {sum_n['answered']}"
        )
        print(f"classifications during the re-checks: {len(runs)} (target 0)")
        print(f"\ntargets held: {sum([rate_v >= 1500, not runs, sorted(statuses) == [304]])}/3")
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
