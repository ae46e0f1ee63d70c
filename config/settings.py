"""Spotcheck settings.

Every value comes from the environment through config.env, and every default is the embedded one:
SQLite in WAL mode, local media, a file-based cache, a filesystem Celery broker, DEBUG on. Production
differs only by environment variables (README, "Configuration").
"""

import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("SPOTCHECK_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DEBUG", True)


def _dev_secret_key() -> str:
    """A random key generated once per checkout, so dev sessions survive restarts."""
    path = VAR_DIR / "dev-secret-key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG=0")
    SECRET_KEY = _dev_secret_key()

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "storages",
    "core.apps.CoreConfig",
    "classification.apps.ClassificationConfig",
    "datasets.apps.DatasetsConfig",
    "sitemaps.apps.SitemapsConfig",
    "labeling.apps.LabelingConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "core.outage.OutageMiddleware",
    "core.middleware.PagesLoginRequiredMiddleware",
    "core.middleware.PagesMessageMiddleware",
    "core.errors.ApplicationErrorMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "core.middleware.RequestLogMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "core.context_processors.navigation",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))}
    # No health check (a `SELECT 1` round trip at the start of every request that reuses a connection): a
    # connection that went stale (PostgreSQL restarted) fails its request once with OperationalError, which
    # answers 503 + Retry-After (core/outage.py), and Django closes it at the end of that request
    # (close_if_unusable_or_obsolete); tests/faults holds votes through a restart to that.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = False
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "db.sqlite3",
            # Kept open by each server thread between requests, as PostgreSQL's: opening one (and running
            # the PRAGMAs) cost 2-7 % of a labeling request.
            "CONN_MAX_AGE": env_int("DB_CONN_MAX_AGE", 60),
            "OPTIONS": {
                # Web and worker write at once: WAL lets readers run beside a writer, IMMEDIATE takes the
                # write lock at BEGIN (no deadlock on upgrade), and the timeout waits for it.
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache ----------------------------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "spotcheck"),
            "TIMEOUT": None,
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
else:
    # File-based, not local memory: the web process and the worker must see the same cache.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": VAR_DIR / "cache",
            "TIMEOUT": None,
            "OPTIONS": {"MAX_ENTRIES": 200_000},
        }
    }

# --- Celery ---------------------------------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL or "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT = "core.broker:AtomicFilesystemTransport"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
else:
    # A message a dead worker took (acks_late) is handed out again after this many seconds. It must exceed the
    # longest task run (CELERY_TASK_TIME_LIMIT, 300 s) and the longest retry wait (core.retry caps, 300 s),
    # or a live task or a waiting retry would be delivered twice. A killed scrape chunk comes back sooner,
    # through the stalled-runs sweep (SPOTCHECK_SITEMAP_STALLED_SECONDS).
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_BROKER_VISIBILITY_TIMEOUT", 360)}
# Progress lives in our own tables, so no result backend.
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery's Django fixup closes every database connection around every task unless this is set; workers keep
# theirs like the web does instead (config.celery: closed when older than CONN_MAX_AGE, unhealthy or broken).
CELERY_DB_REUSE_MAX = 1_000_000_000
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 300)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 240)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Workers outlive a broker outage of any length (Celery's default gives up after 100 attempts), and tasks
# running when the connection drops are cancelled: their acks could not reach the broker, so they come back.
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_ROUTES: dict[str, dict[str, str]] = {}
CELERY_BEAT_SCHEDULE: dict[str, dict] = {}
# Work requested by a committed transaction waits in core's outbox until the broker takes it (core.outbox).
SPOTCHECK_OUTBOX_SWEEP_SECONDS = env_float("SPOTCHECK_OUTBOX_SWEEP_SECONDS", 30.0)
CELERY_TASK_ROUTES["core.tasks.*"] = {"queue": "default"}
CELERY_BEAT_SCHEDULE["core-outbox-sweep"] = {
    "task": "core.tasks.outbox_deliver",
    "schedule": SPOTCHECK_OUTBOX_SWEEP_SECONDS,
}

# --- Storage (media and exports) ------------------------------------------------------------------
AWS_STORAGE_BUCKET_NAME = env_str("AWS_STORAGE_BUCKET_NAME")
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
MEDIA_URL = "/media/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "static")))
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
WHITENOISE_USE_FINDERS = DEBUG
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
if AWS_STORAGE_BUCKET_NAME:
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": AWS_STORAGE_BUCKET_NAME,
            "region_name": env_str("AWS_S3_REGION_NAME") or None,
            "endpoint_url": env_str("AWS_S3_ENDPOINT_URL") or None,
            "location": env_str("AWS_S3_LOCATION", ""),
            "default_acl": None,
            "querystring_auth": True,
            "querystring_expire": env_int("AWS_QUERYSTRING_EXPIRE", 300),
            "file_overwrite": False,
        },
    }
else:
    _default_storage = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
STORAGES = {
    "default": _default_storage,
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# --- Auth -----------------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# How long a server process may remember who an API token is and which roles a user holds: a revoked
# token, a deactivated user or a changed role takes effect within this many seconds (0: never remembered).
AUTH_CACHE_SECONDS = env_float("AUTH_CACHE_SECONDS", 30.0)
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# --- API ------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "core.authentication.CachedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "core.api.exception_handler",
    "DEFAULT_PARSER_CLASSES": [
        "core.json_input.StrictJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Spotcheck API",
    "DESCRIPTION": "Vehicle-listing image classification, review fixes, crowd labeling and datasets.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # Choice sets used by several fields get one name in the schema.
    "ENUM_NAME_OVERRIDES": {
        "ValueSourceEnum": "sitemaps.api.serializers.SOURCES",
        "ScrapeStatusEnum": "sitemaps.models.Scrape.Status",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "core.schema.error_responses_document",
    ],
}

# --- Internationalisation -------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# --- Security (production) ------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    if env_bool("USE_X_FORWARDED_PROTO", False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Logging (one JSON object per line) -----------------------------------------------------------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "core.logging.JsonFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.server": {"level": "WARNING"},
        "celery": {"level": LOG_LEVEL},
    },
}

# --- Spotcheck ------------------------------------------------------------------------------------
# Outbound fetching of hostile URLs (classification.fetch) reaches global addresses only, plus these exact
# ip:port endpoints and CIDR networks (a private CDN: "10.20.0.0/16"; the demo: "127.0.0.1:8000"), checked on
# the resolved address of every hop. An entry reaching loopback is refused when DEBUG=0 (system check core.E001).
SPOTCHECK_FETCH_ALLOW = env_list("SPOTCHECK_FETCH_ALLOW", [])
SPOTCHECK_FETCH_MAX_BYTES = env_int("SPOTCHECK_FETCH_MAX_BYTES", 20 * 1024 * 1024)
SPOTCHECK_FETCH_CONNECT_TIMEOUT = env_float("SPOTCHECK_FETCH_CONNECT_TIMEOUT", 5.0)
SPOTCHECK_FETCH_READ_TIMEOUT = env_float("SPOTCHECK_FETCH_READ_TIMEOUT", 10.0)
SPOTCHECK_FETCH_DEADLINE = env_float("SPOTCHECK_FETCH_DEADLINE", 30.0)
SPOTCHECK_FETCH_MAX_REDIRECTS = env_int("SPOTCHECK_FETCH_MAX_REDIRECTS", 5)
SPOTCHECK_MAX_PIXELS = env_int("SPOTCHECK_MAX_PIXELS", 60_000_000)
SPOTCHECK_CLASSIFIER_BACKEND = env_str("SPOTCHECK_CLASSIFIER_BACKEND", "learned")
# The learned backend's ONNX Runtime threads per process (one classify worker per core: 1).
SPOTCHECK_EMBEDDING_THREADS = env_int("SPOTCHECK_EMBEDDING_THREADS", 1)
SPOTCHECK_DEMO_BASE_URL = env_str("SPOTCHECK_DEMO_BASE_URL", "http://127.0.0.1:8000")
# Seconds a client is told to wait (Retry-After of the 503) while the database or the cache is unreachable.
SPOTCHECK_OUTAGE_RETRY_AFTER = env_int("SPOTCHECK_OUTAGE_RETRY_AFTER", 5)
# Who may see a picture (classification.media): each function answers for its app; a user sees it if any says yes.
SPOTCHECK_IMAGE_ACCESS = ["sitemaps.access.image_visible", "labeling.selectors.image_visible"]

# --- Sitemaps (advertiser_sitemaps) ---------------------------------------------------------------
# Ingestion caps (a scrape larger than this is refused with a 400), the classification chunk size, when a
# picture counts as "reused" (same picture on this many vehicles of one advertiser ⇒ Placeholder), the share
# of {Placeholder, none} above which a scrape is flagged "the classifier failed to respond", and how often the
# outbox sweep re-sends fixes the cache has not acknowledged.
SPOTCHECK_SITEMAP_MAX_VEHICLES = env_int("SPOTCHECK_SITEMAP_MAX_VEHICLES", 20_000)
SPOTCHECK_SITEMAP_MAX_IMAGES = env_int("SPOTCHECK_SITEMAP_MAX_IMAGES", 40)
# Stage 1 (fetch queue) takes a scrape's pictures 200 at a time: a re-check of 50 URLs spent as much on its
# dozen statements and its task as on its conditional GETs (bench/pipeline.py).
SPOTCHECK_SITEMAP_CHUNK = env_int("SPOTCHECK_SITEMAP_CHUNK", 200)
SPOTCHECK_SITEMAP_REUSED_MIN_VEHICLES = env_int("SPOTCHECK_SITEMAP_REUSED_MIN_VEHICLES", 5)
SPOTCHECK_SITEMAP_FAILURE_ALERT = env_float("SPOTCHECK_SITEMAP_FAILURE_ALERT", 0.5)
SPOTCHECK_SITEMAP_PAGE_SIZE = env_int("SPOTCHECK_SITEMAP_PAGE_SIZE", 25)
SPOTCHECK_SITEMAP_FETCH_RETRIES = env_int("SPOTCHECK_SITEMAP_FETCH_RETRIES", 5)
SPOTCHECK_SITEMAP_SWEEP_SECONDS = env_float("SPOTCHECK_SITEMAP_SWEEP_SECONDS", 60.0)
# An inventory of 10,000 vehicles x 12 URLs is ~10 MB of JSON; only the scrape endpoint accepts this much.
SPOTCHECK_SITEMAP_MAX_BODY = env_int("SPOTCHECK_SITEMAP_MAX_BODY", 64 * 1024 * 1024)
# The review form has 4 fields per picture (two dropdowns, the two values they showed): 25 vehicles x 12
# pictures is 1,200 fields, above Django's default 1,000. Its script sends only changed rows; this keeps the
# form working without JavaScript, for pages of up to 100 vehicles x 25 pictures.
DATA_UPLOAD_MAX_NUMBER_FIELDS = env_int("DATA_UPLOAD_MAX_NUMBER_FIELDS", 10_000)
CELERY_TASK_ROUTES.update(
    {
        "sitemaps.tasks.scrape_classify": {"queue": "fetch"},
        "sitemaps.tasks.scrape_chunk_classify": {"queue": "fetch"},
        "sitemaps.tasks.scrape_pictures_classify": {"queue": "classify"},
        "sitemaps.tasks.fix_deliver": {"queue": "default"},
        "sitemaps.tasks.fixes_undelivered_resend": {"queue": "default"},
        "sitemaps.tasks.scrapes_stalled_resume": {"queue": "default"},
    }
)
# A classification run that counted nothing for this long is resumed (its pending pictures re-dispatched),
# checked every SPOTCHECK_SITEMAP_STALLED_SWEEP_SECONDS: a chunk lost with a killed worker is back within 2 min.
SPOTCHECK_SITEMAP_STALLED_SECONDS = env_int("SPOTCHECK_SITEMAP_STALLED_SECONDS", 60)
SPOTCHECK_SITEMAP_STALLED_SWEEP_SECONDS = env_float("SPOTCHECK_SITEMAP_STALLED_SWEEP_SECONDS", 30.0)
CELERY_BEAT_SCHEDULE.update(
    {
        "sitemaps-fix-outbox-sweep": {
            "task": "sitemaps.tasks.fixes_undelivered_resend",
            "schedule": SPOTCHECK_SITEMAP_SWEEP_SECONDS,
        },
        "sitemaps-stalled-runs-sweep": {
            "task": "sitemaps.tasks.scrapes_stalled_resume",
            "schedule": SPOTCHECK_SITEMAP_STALLED_SWEEP_SECONDS,
        },
    }
)

# --- Classification core (issue 3: fetching, image keys, classifiers, cache, pipeline) -------------------
# Concurrent downloads per batch (I/O bound), and the Hamming distance under which two perceptual hashes
# are the same picture re-encoded or resized.
SPOTCHECK_FETCH_CONCURRENCY = env_int("SPOTCHECK_FETCH_CONCURRENCY", 16)
SPOTCHECK_NEAR_DUPLICATE_DISTANCE = env_int("SPOTCHECK_NEAR_DUPLICATE_DISTANCE", 6)
SPOTCHECK_CLASSIFY_MAX_URLS = env_int("SPOTCHECK_CLASSIFY_MAX_URLS", 100)
# Pictures per stage 2 task (classify queue) of a scrape: a stage 1 chunk's new pictures are split so that
# every classify process gets a share.
SPOTCHECK_CLASSIFY_CHUNK = env_int("SPOTCHECK_CLASSIFY_CHUNK", 50)
# A scrape's fetch chunk waits (SPOTCHECK_CLASSIFY_AHEAD_WAIT seconds, up to 4x that while it keeps finding it
# full, then asks again) while the classify queue already holds this many pictures: staged bytes stay bounded
# (~1 GB of seed-size pictures) instead of a whole first scrape's, a few seconds of stage 2's work ahead.
SPOTCHECK_CLASSIFY_AHEAD = env_int("SPOTCHECK_CLASSIFY_AHEAD", 400)
SPOTCHECK_CLASSIFY_AHEAD_WAIT = env_float("SPOTCHECK_CLASSIFY_AHEAD_WAIT", 2.0)
# All downloads of one POST /api/v1/classify/ together (a slow batch answers with timeouts, not a hung request).
SPOTCHECK_CLASSIFY_API_DEADLINE = env_float("SPOTCHECK_CLASSIFY_API_DEADLINE", 45.0)
# Defaults for the other backends when no ModelVersion of theirs exists yet (a version's params win).
SPOTCHECK_HTTP_CLASSIFIER_URL = env_str("SPOTCHECK_HTTP_CLASSIFIER_URL", "")
SPOTCHECK_HTTP_CLASSIFIER_MODEL = env_str("SPOTCHECK_HTTP_CLASSIFIER_MODEL", "image_type")
SPOTCHECK_HTTP_CLASSIFIER_TIMEOUT = env_float("SPOTCHECK_HTTP_CLASSIFIER_TIMEOUT", 10.0)
SPOTCHECK_REKOGNITION_REGION = env_str("SPOTCHECK_REKOGNITION_REGION", "") or env_str("AWS_DEFAULT_REGION", "")

# --- Cloud backends, uploads, bucket events, cascade (issue 15) ------------------------------------------
# Azure AI Vision (Image Analysis 3.2): the endpoint of the resource and its key (a secret: no default).
SPOTCHECK_AZURE_VISION_ENDPOINT = env_str("SPOTCHECK_AZURE_VISION_ENDPOINT", "")
SPOTCHECK_AZURE_VISION_KEY = env_str("SPOTCHECK_AZURE_VISION_KEY", "")
# Estimated price per 1,000 pictures sent to each backend (a version's "price_per_1000" param wins).
SPOTCHECK_PRICE_PER_1000 = {
    "builtin": 0.0,
    "learned": 0.0,
    "http": env_float("SPOTCHECK_HTTP_PRICE_PER_1000", 0.0),
    "azure": env_float("SPOTCHECK_AZURE_PRICE_PER_1000", 1.0),
    "rekognition": env_float("SPOTCHECK_REKOGNITION_PRICE_PER_1000", 1.0),
}
# The cascade backend: the local model first, the paid one for pictures whose image-type score is below this.
SPOTCHECK_CASCADE_LOCAL = env_str("SPOTCHECK_CASCADE_LOCAL", "builtin")
SPOTCHECK_CASCADE_PAID = env_str("SPOTCHECK_CASCADE_PAID", "azure")
SPOTCHECK_CASCADE_THRESHOLD = env_float("SPOTCHECK_CASCADE_THRESHOLD", 0.8)
# Bucket events. SNS: topics we accept notifications from (empty: none), and where signing certificates may
# be fetched from (https, an SNS host of AWS, a .pem path). Event Grid: a shared key the subscription's
# endpoint URL carries as ?key=… (empty: Event Grid events refused), and the blob URL prefixes we classify.
SPOTCHECK_SNS_TOPIC_ARNS = env_list("SPOTCHECK_SNS_TOPIC_ARNS", [])
SPOTCHECK_SNS_CERT_URL_PATTERN = env_str(
    "SPOTCHECK_SNS_CERT_URL_PATTERN", r"^https://sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/[A-Za-z0-9._/-]+\.pem$"
)
SPOTCHECK_SNS_MAX_AGE = env_int("SPOTCHECK_SNS_MAX_AGE", 3600)
SPOTCHECK_SNS_SUBSCRIBE_URL_PATTERN = env_str(
    "SPOTCHECK_SNS_SUBSCRIBE_URL_PATTERN",
    r"^https://sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/\?Action=ConfirmSubscription&",
)
SPOTCHECK_EVENTGRID_KEY = env_str("SPOTCHECK_EVENTGRID_KEY", "")
SPOTCHECK_EVENTGRID_BLOB_PREFIXES = env_list("SPOTCHECK_EVENTGRID_BLOB_PREFIXES", [])
# A bucket object is read from our own storage and decoded at once: classify queue (the fetch queue never decodes).
CELERY_TASK_ROUTES.update({"classification.bucket_object_classify": {"queue": "classify"}})
# Decoding and classifying on the classify queue (CPU bound, one process per core); downloads run on the
# fetch queue (sitemaps' chunks) or in the API request.
CELERY_TASK_ROUTES.update(
    {
        "classification.urls_fetch": {"queue": "fetch"},
        "classification.image_classify": {"queue": "classify"},
        "classification.image_reclassify": {"queue": "classify"},
    }
)

# --- Datasets and model quality (issue 6: export, evaluation, parameter search, promotion) -------------
# Exports stream to storage (I/O: default queue); evaluations, searches and the re-classification after a
# promotion decode and classify pictures (CPU: classify queue).
CELERY_TASK_ROUTES.update(
    {
        "classification.export_dataset": {"queue": "default"},
        "classification.evaluate_models": {"queue": "classify"},
        "classification.parameter_search": {"queue": "classify"},
        "classification.reclassify_plan": {"queue": "default"},
        "classification.reclassify_chunk": {"queue": "classify"},
    }
)

# --- Labeling (issue 5) ---------------------------------------------------------------------------
# How long an item served to a labeler stays reserved for them; expired leases are ignored, then swept.
LABELING_LEASE_SECONDS = env_int("LABELING_LEASE_SECONDS", 600)
# Labelers with at least this many gold answers and a smoothed gold accuracy below the threshold are flagged.
LABELING_FLAG_MIN_GOLD = env_int("LABELING_FLAG_MIN_GOLD", 5)
LABELING_FLAG_BELOW = env_float("LABELING_FLAG_BELOW", 0.7)
# Caps on an uploaded zip of pictures (each entry is also capped by SPOTCHECK_FETCH_MAX_BYTES).
LABELING_ZIP_MAX_FILES = env_int("LABELING_ZIP_MAX_FILES", 2000)
LABELING_ZIP_MAX_BYTES = env_int("LABELING_ZIP_MAX_BYTES", 500 * 1024 * 1024)
# The vote/next hot path prepares its few statements per connection on PostgreSQL (planning was most of the
# server's time). Set 0 behind a transaction-mode pooler without prepared-statement support (PgBouncer < 1.21).
LABELING_PREPARED_STATEMENTS = env_int("LABELING_PREPARED_STATEMENTS", 1) == 1
CELERY_TASK_ROUTES.update({"labeling.tasks.*": {"queue": "default"}})
CELERY_BEAT_SCHEDULE.update({"labeling-leases-sweep": {"task": "labeling.tasks.leases_sweep", "schedule": 300.0}})
# Gold answers per labeler (the weighted rule's accuracies) and flags by gold are refreshed this often.
CELERY_BEAT_SCHEDULE.update({"labeling-quality-sweep": {"task": "labeling.tasks.quality_sweep", "schedule": 60.0}})
