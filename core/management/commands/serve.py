"""Run the web server and a Celery worker (with the beat scheduler) together, for the embedded setup.

Both run as child processes under this one: when either stops (Ctrl-C, a crash, a port already in use),
the other is stopped too, so no orphaned worker keeps consuming the queue.

The web server is granian (``--interface wsgi``: HTTP parsed in Rust, keep-alive connections, a listen backlog
of 2048), not Django's development server, whose backlog of 10 reset connections at 50 labelers. It replaced
gunicorn's threads (``gthread``), whose Python HTTP parsing and thread hand-off made a next + vote cycle cost
1-4 ms more CPU on 2 cores (docs/labeling.md, round 4). On SQLite it runs one process with 8 threads
(writers then queue on a lock in that process instead of polling SQLite's busy timeout); on PostgreSQL one
per core with 4 threads each. Neither server times out a request (gunicorn's ``--timeout`` watched the
worker's main loop, not its request threads): the app's own deadlines bound them (the classify API's,
the fetch timeouts). ``--dev`` runs the development server with auto-reload instead (``make dev``).
"""

import os
import signal
import socket
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection


def _interrupt(signum, frame):
    raise KeyboardInterrupt


class Command(BaseCommand):
    help = "Start the web server (granian) and a Celery worker (all queues, embedded beat) together."

    def add_arguments(self, parser):
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000")
        parser.add_argument("--concurrency", type=int, default=2, help="Celery worker processes")
        parser.add_argument("--workers", type=int, default=0, help="web processes (default: 1 on SQLite, else cores)")
        parser.add_argument(
            "--threads", type=int, default=0, help="request threads per web process (default: 8 on SQLite, else 4)"
        )
        parser.add_argument("--dev", action="store_true", help="Django's development server, with auto-reload")

    def web_command(self, *, addrport: str, workers: int, threads: int, dev: bool) -> list[str]:
        python = sys.executable
        if dev:
            return [python, "manage.py", "runserver", addrport]
        sqlite = connection.vendor == "sqlite"
        if not workers:
            workers = 1 if sqlite else (os.cpu_count() or 1)
        if not threads:
            threads = 8 if sqlite else 4
        host, _, port = addrport.rpartition(":")
        return [
            python, "-m", "granian", "config.wsgi:application", "--interface", "wsgi", "--http", "1", "--no-ws",
            "--host", host.strip("[]") or "127.0.0.1", "--port", port,
            "--workers", str(workers), "--blocking-threads", str(threads),
            # A crowd of phones connecting at once waits in the kernel's queue instead of being reset.
            "--backlog", "2048",
            # Phones keep their connection between answers; an idle one is closed after 30 s (the wait for
            # the next request's headers).
            "--http1-header-read-timeout", "30000",
            # A worker that dies (a crash, the OOM killer) is started again.
            "--respawn-failed-workers",
            # SIGTERM: requests in flight finish; a worker still busy after 10 s is killed.
            "--workers-kill-timeout", "10",
        ]  # fmt: skip

    def handle(self, *args, addrport: str, concurrency: int, workers: int, threads: int, dev: bool, **options):
        host, _, port = addrport.rpartition(":")
        self._ensure_free(host or "127.0.0.1", int(port))
        python = sys.executable
        children = {
            "worker": subprocess.Popen(
                [
                    python, "-m", "celery", "-A", "config", "worker", "--beat",
                    "--schedule", str(settings.VAR_DIR / "celerybeat-schedule"),
                    "--queues", "default,fetch,classify", "--concurrency", str(concurrency),
                    "--loglevel", "INFO",
                ]
            ),
            "web": subprocess.Popen(self.web_command(addrport=addrport, workers=workers, threads=threads, dev=dev)),
        }  # fmt: skip
        server = "development server (auto-reload)" if dev else "granian"
        self.stdout.write(f"Web server ({server}) on http://{addrport}/ and a Celery worker; Ctrl-C stops both.")
        signal.signal(signal.SIGTERM, _interrupt)
        code = 0
        try:
            while all(child.poll() is None for child in children.values()):
                time.sleep(0.5)
            stopped = next(name for name, child in children.items() if child.poll() is not None)
            code = children[stopped].returncode
            self.stderr.write(f"The {stopped} process stopped (exit {code}); stopping the rest.")
        except KeyboardInterrupt:
            pass
        finally:
            self._stop(children.values())
        if code:
            raise CommandError(f"exit {code}")

    def _ensure_free(self, host: str, port: int) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            if probe.connect_ex((host, port)) == 0:
                raise CommandError(f"{host}:{port} is already in use: stop what runs there or pass another address.")

    def _stop(self, children) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for child in children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
