"""`manage.py serve`'s web server: gunicorn with threads, sized per database as docs/deploy.md says."""

import os

from django.db import connection

from core.management.commands.serve import Command


def _option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_serve_runs_one_process_of_8_threads_on_sqlite_and_one_of_4_per_core_on_postgres():
    command = Command().web_command(addrport="127.0.0.1:8000", workers=0, threads=0, dev=False)
    expected = ("1", "8") if connection.vendor == "sqlite" else (str(os.cpu_count() or 1), "4")
    assert (_option(command, "--workers"), _option(command, "--threads")) == expected
    assert _option(command, "--worker-class") == "gthread"


def test_serve_takes_the_given_processes_and_threads():
    command = Command().web_command(addrport="127.0.0.1:8000", workers=3, threads=2, dev=False)
    assert (_option(command, "--workers"), _option(command, "--threads")) == ("3", "2")
