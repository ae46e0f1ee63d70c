"""Run the web server and a Celery worker (with the beat scheduler) together, for the embedded setup."""

import os
import signal
import subprocess
import sys

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Start a Celery worker (all queues, embedded beat) and the development web server."

    def add_arguments(self, parser):
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000")
        parser.add_argument("--concurrency", type=int, default=2)

    def handle(self, *args, addrport: str, concurrency: int, **options):
        worker = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "config", "worker", "--beat",
                "--schedule", str(settings.VAR_DIR / "celerybeat-schedule"),
                "--queues", "default,fetch,classify", "--concurrency", str(concurrency),
                "--loglevel", "INFO",
            ],
            env=os.environ.copy(),
        )  # fmt: skip
        self.stdout.write(f"Celery worker started (pid {worker.pid}); web server on http://{addrport}/")
        try:
            call_command("runserver", addrport, use_reloader=False)
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.kill()
