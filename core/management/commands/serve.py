"""Run the web server and a Celery worker (with the beat scheduler) together, for the embedded setup.

Both run as child processes under this one: when either stops (Ctrl-C, a crash, a port already in use),
the other is stopped too, so no orphaned worker keeps consuming the queue.
"""

import signal
import socket
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


def _interrupt(signum, frame):
    raise KeyboardInterrupt


class Command(BaseCommand):
    help = "Start the development web server and a Celery worker (all queues, embedded beat) together."

    def add_arguments(self, parser):
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000")
        parser.add_argument("--concurrency", type=int, default=2)

    def handle(self, *args, addrport: str, concurrency: int, **options):
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
            "web": subprocess.Popen([python, "manage.py", "runserver", addrport, "--noreload"]),
        }  # fmt: skip
        self.stdout.write(f"Web server on http://{addrport}/ and a Celery worker; Ctrl-C stops both.")
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
