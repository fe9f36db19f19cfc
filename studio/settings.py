"""The studio's one settings module: every knob comes from the environment.

Embedded defaults (no variables set): SQLite and a Redis that `studio up` starts itself, both
under STUDIO_HOME, and the local-process backend. Production: DATABASE_URL, REDIS_URL and
STUDIO_BACKEND=kubernetes.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url

from apps.core.keys import REDIS_PREFIX
from studio.env import env_bool, env_choice, env_int, env_list, env_path, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
STUDIO_HOME = env_path("STUDIO_HOME", Path("~/.studio").expanduser())
RUN_DIR = STUDIO_HOME / "run"


def _secret_key() -> str:
    """SECRET_KEY from the environment, else one generated once and kept under STUDIO_HOME."""
    configured = env_str("STUDIO_SECRET_KEY")
    if configured:
        return configured
    path = STUDIO_HOME / "secret_key"
    if not path.exists():
        import secrets

        STUDIO_HOME.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:  # created with its final mode: never readable by others, not even for a moment
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_text().strip()
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("STUDIO_DEBUG", False)
ALLOWED_HOSTS = env_list("STUDIO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("STUDIO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.forms",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "channels",
    "apps.core",
    "apps.accounts",
    "apps.endpoints",
    "apps.monitoring",
    "apps.costs",
    "apps.rollouts",
    "apps.arm",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "apps.accounts.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "apps.accounts.audit.ActorMiddleware",
    "apps.accounts.permissions.RoleMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "studio.urls"
# Form fields render through templates/forms/field.html: label above, field, help below, error under it.
FORM_RENDERER = "apps.core.forms.StudioFormRenderer"
ASGI_APPLICATION = "studio.asgi.application"
WSGI_APPLICATION = None

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
                "apps.core.health.reconciler_banner",
                "apps.accounts.permissions.roles_context",
            ],
        },
    },
]

# --- database: SQLite under STUDIO_HOME unless DATABASE_URL names another ---
DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(STUDIO_HOME / "studio.sqlite3"),
            # Several processes (web, worker, gateway) share the file: wait on locks, not fail.
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"},
            # A file, not Django's in-memory default: tests share it between threads (live server, gateway)
            # and processes, and shared-cache memory databases fail with "table is locked" instead of waiting.
            "TEST": {"NAME": str(STUDIO_HOME / "test-studio.sqlite3")},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- redis: broker, cache and channel layer ---
EMBEDDED_REDIS_SOCKET = RUN_DIR / "redis.sock"
REDIS_URL = env_str("REDIS_URL") or f"unix://{EMBEDDED_REDIS_SOCKET}"
REDIS_EMBEDDED = not env_str("REDIS_URL")
# Every key the studio writes starts with it (apps/core/keys.py reads STUDIO_REDIS_PREFIX), so studios or
# test runs sharing one Redis stay apart.
STUDIO_REDIS_PREFIX = REDIS_PREFIX


def _celery_url(redis_url: str) -> str:
    """Celery spells a unix-socket Redis URL its own way."""
    if redis_url.startswith("unix://"):
        return "redis+socket://" + redis_url.removeprefix("unix://")
    return redis_url


CELERY_BROKER_URL = _celery_url(REDIS_URL)
CELERY_BROKER_TRANSPORT_OPTIONS = {"global_keyprefix": STUDIO_REDIS_PREFIX}
CELERY_RESULT_BACKEND = None
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env_bool("STUDIO_CELERY_EAGER", False)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# The worker's pool follows the machine: one process per core, 2 to 4 (a long build must not stall every
# observation; more would only cost memory on a small machine).
CELERY_WORKER_CONCURRENCY = env_int("STUDIO_WORKER_CONCURRENCY", max(2, min(4, os.cpu_count() or 2)), minimum=1)
# Worker and beat write a heartbeat this often; a part silent for STUDIO_HEARTBEAT_STALE_S is stale, and a stale
# reconciler fails /healthz and puts a banner on every page (apps/core/heartbeat.py).
STUDIO_HEARTBEAT_S = env_int("STUDIO_HEARTBEAT_S", 5, minimum=1)
STUDIO_HEARTBEAT_STALE_S = env_int("STUDIO_HEARTBEAT_STALE_S", 30, minimum=2)
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    # Queues one supervision task per deployment (restarts, probes, readiness; lost reconciles and deletes),
    # none for a deployment whose last one has not run; expires so a busy worker never piles the passes up.
    "observe-deployments": {
        "task": "apps.endpoints.tasks.observe_deployments",
        "schedule": float(env_int("STUDIO_OBSERVE_INTERVAL_S", 2, minimum=1)),
        "options": {"expires": float(env_int("STUDIO_OBSERVE_INTERVAL_S", 2, minimum=1))},
    },
}

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": STUDIO_REDIS_PREFIX + "cache",
    }
}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "prefix": STUDIO_REDIS_PREFIX + "asgi"},
    }
}

# --- auth ---
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# django-axes first: it refuses a locked-out account and address before any password is checked.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
# Failed sign-ins are counted per account and address (the web form and `studio login` alike); after the limit
# that pair is refused until the cool-off ends; a success resets the count.
AXES_FAILURE_LIMIT = env_int("STUDIO_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = env_int("STUDIO_LOGIN_COOLOFF_MINUTES", 15, minimum=1) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "apps.accounts.views.locked_out"
AXES_VERBOSE = False
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.accounts.tokens.PersonalTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Signed in with a role; each view names the role its actions need (apps/accounts/permissions.py).
    "DEFAULT_PERMISSION_CLASSES": ["apps.accounts.permissions.HasRole"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "apps.core.api.exception_handler",
    "DEFAULT_PARSER_CLASSES": [
        "apps.core.parsers.LimitedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
}
CSRF_FAILURE_VIEW = "apps.core.errorpages.csrf_failure"
SPECTACULAR_SETTINGS = {
    "TITLE": "Studio API",
    "DESCRIPTION": "Models, environments, online endpoints and deployments (Azure ML v2 compatible).",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI's assets from drf-spectacular-sidecar, served by the studio (no CDN), behind sign-in.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
}

# --- files ---
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Served from the app folders by WhiteNoise; set STUDIO_STATIC_ROOT to run collectstatic for a CDN-free image.
STATIC_ROOT = env_str("STUDIO_STATIC_ROOT") or None
WHITENOISE_USE_FINDERS = True
MEDIA_ROOT = env_path("STUDIO_MEDIA_ROOT", STUDIO_HOME / "media")
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
STUDIO_MAX_UPLOAD_BYTES = env_int("STUDIO_MAX_UPLOAD_BYTES", 2 * 1024**3, minimum=1)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

# --- the studio's own knobs ---
STUDIO_BACKEND = env_choice("STUDIO_BACKEND", "local", ("local", "kubernetes"))
STUDIO_INSTANCES_DIR = STUDIO_HOME / "instances"
# Deployed code runs as unprivileged users (apps/endpoints/tenant.py): `auto` does so when the studio is root.
STUDIO_TENANT_ISOLATION = env_choice("STUDIO_TENANT_ISOLATION", "auto", ("auto", "on", "off"))
STUDIO_ENVS_DIR = env_path("STUDIO_ENVS_DIR", STUDIO_HOME / "envs")
# The local backend: uv's shared download cache, how often the worker supervises instances, how long an
# instance leaves the routing table before it is stopped, and the crash-restart back-off.
STUDIO_UV_CACHE_DIR = str(env_path("UV_CACHE_DIR", Path("~/.cache/uv").expanduser()))
STUDIO_OBSERVE_INTERVAL_S = env_int("STUDIO_OBSERVE_INTERVAL_S", 2, minimum=1)
# Settled deployments observed by one task of the periodic pass (their rows read in a few queries).
STUDIO_OBSERVE_CHUNK = env_int("STUDIO_OBSERVE_CHUNK", 50, minimum=1)
STUDIO_DRAIN_MS = env_int("STUDIO_DRAIN_MS", 1500, minimum=0)
STUDIO_RESTART_BACKOFF_MS = env_int("STUDIO_RESTART_BACKOFF_MS", 1000, minimum=1)
STUDIO_CRASHLOOP_RESTARTS = env_int("STUDIO_CRASHLOOP_RESTARTS", 3, minimum=1)
STUDIO_PUBLIC_URL = env_str("STUDIO_PUBLIC_URL", "http://127.0.0.1:8000")
STUDIO_GATEWAY_URL = env_str("STUDIO_GATEWAY_URL", "http://127.0.0.1:8001")
# The gateway's HTTPS address (set by `studio up`): the scoring URIs the Azure-shaped API gives Azure's SDK.
STUDIO_GATEWAY_HTTPS_URL = env_str("STUDIO_GATEWAY_HTTPS_URL", "")
STUDIO_CORE_QUOTA = env_int("STUDIO_CORE_QUOTA", 100, minimum=0)
STUDIO_TOKEN_LIFETIME_S = env_int("STUDIO_TOKEN_LIFETIME_S", 24 * 3600, minimum=60)
# How long a blob-upload SAS the Azure-shaped API hands out stays valid (apps/arm/sas.py).
STUDIO_SAS_LIFETIME_S = env_int("STUDIO_SAS_LIFETIME_S", 30 * 60, minimum=1)
STUDIO_CURRENCY = env_str("STUDIO_CURRENCY", "USD")
# Deployments run in a namespace of their own, never the studio's (the studio's Role there cannot touch its objects).
STUDIO_KUBE_NAMESPACE = env_str("STUDIO_KUBE_NAMESPACE", "studio-workloads")
# Where the gateway pods run: inference pods take traffic from them alone (a NetworkPolicy); "" = no policy.
STUDIO_KUBE_GATEWAY_NAMESPACE = env_str("STUDIO_KUBE_GATEWAY_NAMESPACE", "studio")
STUDIO_KUBECONFIG = env_str("STUDIO_KUBECONFIG")
STUDIO_KUBE_CONTEXT = env_str("STUDIO_KUBE_CONTEXT")
# The studio URL as pods see it (their storage initializer downloads model and code from it).
STUDIO_KUBE_STUDIO_URL = env_str("STUDIO_KUBE_STUDIO_URL")
STUDIO_KUBE_RUNTIME_IMAGE = env_str("STUDIO_KUBE_RUNTIME_IMAGE")
STUDIO_KUBE_INITIALIZER_IMAGE = env_str("STUDIO_KUBE_INITIALIZER_IMAGE")
STUDIO_KUBE_IMAGE_PULL_SECRETS = env_list("STUDIO_KUBE_IMAGE_PULL_SECRETS", [])
# Taints GPU instance types tolerate (kubectl's `key[=value]:Effect`) and labels they must land on (`key=value`).
STUDIO_KUBE_GPU_TOLERATIONS = env_list(
    "STUDIO_KUBE_GPU_TOLERATIONS", ["nvidia.com/gpu:NoSchedule", "sku=gpu:NoSchedule"]
)
STUDIO_KUBE_GPU_NODE_SELECTOR = env_list("STUDIO_KUBE_GPU_NODE_SELECTOR", [])
# Every Kubernetes deployment is re-applied (server-side apply: a no-op when nothing drifted) and observed this
# often even when the controller's watches saw nothing; while no controller runs, the periodic pass observes them.
STUDIO_KUBE_RESYNC_S = env_int("STUDIO_KUBE_RESYNC_S", 300, minimum=10)
# The controller's leader-election Lease (in STUDIO_KUBE_LEASE_NAMESPACE, default the workloads' namespace).
STUDIO_KUBE_LEASE_S = env_int("STUDIO_KUBE_LEASE_S", 15, minimum=2)
STUDIO_KUBE_LEASE_NAMESPACE = env_str("STUDIO_KUBE_LEASE_NAMESPACE")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname).1s [%(process)d] %(name)s - %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "filters": {"skip_logged": {"()": "apps.core.logfilters.SkipLogged"}},
    "root": {"handlers": ["console"], "level": env_str("STUDIO_LOG_LEVEL", "INFO")},
    "loggers": {
        "django.server": {"level": "WARNING"},
        # A refusal is logged once, by apps/accounts/permissions.py (user, role needed), without a traceback.
        "django.request": {"filters": ["skip_logged"]},
        # Every few seconds beat sends, and the worker receives and finishes, the periodic tasks; at INFO those
        # lines would bury `studio up`'s own output (failures still log at ERROR).
        "celery.beat": {"level": "WARNING"},
        "celery.worker.strategy": {"level": "WARNING"},
        "celery.app.trace": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},  # a line per request the CLI or `studio up` makes
        "axes": {"level": "WARNING"},  # a line per sign-in; lock-outs still log at WARNING
    },
}

# --- monitoring and costs (apps/monitoring, apps/costs) ---
STUDIO_METRICS_10S_RETENTION_HOURS = env_int("STUDIO_METRICS_10S_RETENTION_HOURS", 24, minimum=1)
STUDIO_METRICS_MINUTE_RETENTION_DAYS = env_int("STUDIO_METRICS_MINUTE_RETENTION_DAYS", 30, minimum=1)
STUDIO_METRICS_HOUR_RETENTION_DAYS = env_int("STUDIO_METRICS_HOUR_RETENTION_DAYS", 400, minimum=1)
STUDIO_MIRROR_PAIRS_RETENTION_DAYS = env_int("STUDIO_MIRROR_PAIRS_RETENTION_DAYS", 7, minimum=1)
STUDIO_INSTANCE_SAMPLES_RETENTION_DAYS = env_int("STUDIO_INSTANCE_SAMPLES_RETENTION_DAYS", 7, minimum=1)
# Relative tolerance, in parts per million, within which two numbers in mirrored answers count as equal.
STUDIO_MIRROR_TOLERANCE_PPM = env_int("STUDIO_MIRROR_TOLERANCE_PPM", 1, minimum=0)
# A deployment that costs money and served no request for this long is flagged idle.
STUDIO_IDLE_MINUTES = env_int("STUDIO_IDLE_MINUTES", 60, minimum=1)
CELERY_BEAT_SCHEDULE.update(
    {
        "metrics-ingest": {"task": "apps.monitoring.tasks.metrics_ingest", "schedule": 5.0},
        "instances-sample": {"task": "apps.monitoring.tasks.instances_sample", "schedule": 10.0},
        "metrics-prune": {"task": "apps.monitoring.tasks.metrics_prune", "schedule": 3600.0},
        "autoscale-evaluate": {"task": "apps.costs.tasks.autoscale_evaluate", "schedule": 60.0},
    }
)
# --- progressive rollouts (apps/rollouts) ---
# How often beat judges running rollouts' gates (each evaluation drains the gateways' metrics first).
STUDIO_ROLLOUT_GATE_INTERVAL_MS = env_int("STUDIO_ROLLOUT_GATE_INTERVAL_MS", 5000, minimum=100)
CELERY_BEAT_SCHEDULE["rollouts-evaluate"] = {
    "task": "apps.rollouts.tasks.rollouts_evaluate",
    "schedule": STUDIO_ROLLOUT_GATE_INTERVAL_MS / 1000,
    # Late is still useful (evaluations are idempotent and measure their own clock): expire only after two.
    "options": {"expires": max(2 * STUDIO_ROLLOUT_GATE_INTERVAL_MS / 1000, 1.0)},
}
