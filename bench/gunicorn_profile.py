"""gunicorn config for ``bench/http_loop.py --profile``: the worker profiles each request (cProfile, from
``pre_request`` to ``post_request``: start-up and idle waits left out) and dumps the stats on exit.

Used with one sync worker and one thread, so the profiler (which follows the thread that enabled it) sees
every request.
"""

import cProfile
import os

_profiler = cProfile.Profile()


def pre_request(worker, req):
    _profiler.enable()


def post_request(worker, req, environ, resp):
    _profiler.disable()


def worker_exit(server, worker):
    _profiler.dump_stats(os.environ["BENCH_PROFILE_OUT"])
