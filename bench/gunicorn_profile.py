"""gunicorn config for ``bench/http_loop.py --profile``: the one worker runs under cProfile, dumped on exit.

Used with one sync worker and one thread, so the profiler (which follows the thread that enabled it) sees
every request.
"""

import cProfile
import os

_profiler = cProfile.Profile()


def post_fork(server, worker):
    _profiler.enable()


def worker_exit(server, worker):
    _profiler.disable()
    _profiler.dump_stats(os.environ["BENCH_PROFILE_OUT"])
