"""`manage.py serve`'s web server: granian (WSGI), sized per database, and what it must keep doing as a real
process: static files through whitenoise, keep-alive, a crashed worker started again, a clean SIGTERM."""

import http.client
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from django.conf import settings
from django.db import connection

from core.management.commands.serve import Command


def _option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_serve_runs_one_process_of_8_threads_on_sqlite_and_one_of_4_per_core_on_postgres():
    command = Command().web_command(addrport="127.0.0.1:8000", workers=0, threads=0, dev=False)
    expected = ("1", "8") if connection.vendor == "sqlite" else (str(os.cpu_count() or 1), "4")
    assert (_option(command, "--workers"), _option(command, "--blocking-threads")) == expected
    assert command[2:4] == ["granian", "config.wsgi:application"]
    assert _option(command, "--interface") == "wsgi"


def test_serve_takes_the_given_processes_threads_and_address():
    command = Command().web_command(addrport="0.0.0.0:8123", workers=3, threads=2, dev=False)
    assert (_option(command, "--workers"), _option(command, "--blocking-threads")) == ("3", "2")
    assert (_option(command, "--host"), _option(command, "--port")) == ("0.0.0.0", "8123")


def test_serve_keeps_a_crowds_backlog_and_restarts_crashed_workers():
    command = Command().web_command(addrport="127.0.0.1:8000", workers=0, threads=0, dev=False)
    assert int(_option(command, "--backlog")) >= 2048
    assert "--respawn-failed-workers" in command


def test_dev_is_djangos_auto_reloading_server():
    command = Command().web_command(addrport="127.0.0.1:8000", workers=0, threads=0, dev=True)
    assert command[1:] == ["manage.py", "runserver", "127.0.0.1:8000"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
        except OSError:
            pass
    return found


def _wait(predicate, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    return None


def test_the_real_server_serves_static_files_on_one_connection_survives_a_worker_crash_and_stops_on_sigterm(
    tmp_path,
):
    port = _free_port()
    command = Command().web_command(addrport=f"127.0.0.1:{port}", workers=1, threads=2, dev=False)
    env = {**os.environ, "DEBUG": "1", "SPOTCHECK_VAR_DIR": str(tmp_path)}
    asset = "css/spotcheck.css"
    expected = (Path(settings.BASE_DIR) / "static" / asset).read_bytes()
    log = (tmp_path / "web.log").open("w")
    server = subprocess.Popen(command, cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)

    def static_twice_on_one_connection():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            bodies, ends = [], set()
            for _ in range(2):
                conn.request("GET", f"/static/{asset}")
                response = conn.getresponse()
                bodies.append((response.status, response.read()))
                ends.add(conn.sock.getsockname() if conn.sock else None)  # None: the server closed it
            return bodies, len(ends) == 1 and None not in ends
        except OSError:
            return None
        finally:
            conn.close()

    try:
        served = _wait(static_twice_on_one_connection)
        assert served == ([(200, expected), (200, expected)], True), (tmp_path / "web.log").read_text()
        (worker,) = _children(server.pid)
        os.kill(worker, signal.SIGKILL)
        assert _wait(lambda: _children(server.pid) - {worker}), "no new worker"
        assert _wait(static_twice_on_one_connection) == ([(200, expected), (200, expected)], True)
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=20) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        log.close()
