"""Markers for tests that need the real services (they skip with a visible reason in embedded mode), and a
process started with production settings, for tests that read what production would run with."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Variables of the test run that must not reach a subprocess checking the plain settings.
LEAKY = {"DATABASE_URL", "REDIS_URL", "DEBUG", "SECRET_KEY", "DJANGO_ALLOW_ASYNC_UNSAFE"}

needs_postgres = pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")),
    reason="needs PostgreSQL: set DATABASE_URL=postgres://… (.ci/run does)",
)
needs_redis = pytest.mark.skipif(
    not os.environ.get("REDIS_URL"),
    reason="needs Redis: set REDIS_URL=redis://… (.ci/run does)",
)


def production_read(code: str, *, env: dict[str, str], var_dir: Path) -> object:
    """Run ``code`` (Python printing one JSON value last) after ``django.setup()`` in a process with production
    settings: DEBUG=0, a secret key, none of this run's databases or Spotcheck/Celery/AWS settings, plus ``env``."""
    clean = {
        k: v for k, v in os.environ.items() if k not in LEAKY and not k.startswith(("SPOTCHECK_", "CELERY_", "AWS_"))
    }
    env = {
        **clean,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DEBUG": "0",
        "SECRET_KEY": "z" * 80,
        "SPOTCHECK_VAR_DIR": str(var_dir),
        **env,
    }
    program = "import json, django\ndjango.setup()\n" + code
    result = subprocess.run(
        [sys.executable, "-c", program], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])
