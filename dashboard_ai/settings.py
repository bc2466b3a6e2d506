"""Django settings, read once from the environment (and ``.env`` when present).

Every variable is documented in ``.env.example``. Nothing else in the project reads
``os.environ``; it reads ``django.conf.settings``.
"""

from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

from dashboard_ai.env import (
    ConfigError,
    env,
    load_dotenv,
    read,
    read_bool,
    read_choice,
    read_float,
    read_int,
    read_name,
)

BASE_DIR = Path(__file__).resolve().parent.parent
load_dotenv(BASE_DIR / ".env")

DEBUG = read_bool("DEBUG", False)
# Nothing the chat does is signed across processes (no Django sessions or CSRF
# cookies), so without a configured key a random one per process is safe.
SECRET_KEY = read("SECRET_KEY", env.str, "") or secrets.token_urlsafe(50)

PORT = read_int("PORT", 3000, minimum=1)
if PORT > 65535:
    raise ConfigError("PORT", f"must be at most 65535, got {PORT}")

ALLOWED_HOSTS = read("ALLOWED_HOSTS", env.list, ["localhost", "127.0.0.1", "[::1]"])
CORS_ALLOWED_ORIGINS = read("CORS_ORIGIN", env.list, ["http://localhost:2500"])
for _origin in CORS_ALLOWED_ORIGINS:
    if not _origin.startswith(("http://", "https://")):
        raise ConfigError("CORS_ORIGIN", f"entries must start with http(s)://: {_origin!r}")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.auth",  # AUTH_MODE=django: the users whose sessions these are
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.staticfiles",
    "corsheaders",
    "channels",
    "workspaces",
    "chat",
]

MIDDLEWARE = [
    "dashboard_ai.middleware.RequestLogMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# The Django admin (docs/operations.md, "The admin"): read-only pages of the sessions,
# turns and spend per day at /admin/, behind Django's staff login. Off: not installed,
# /admin/ is a 404. Needs a fixed SECRET_KEY (the login is a signed session cookie).
ADMIN_ENABLED = read_bool("ADMIN_ENABLED", False)
if ADMIN_ENABLED:
    INSTALLED_APPS.insert(INSTALLED_APPS.index("django.contrib.auth"), "django.contrib.admin")
    INSTALLED_APPS.insert(
        INSTALLED_APPS.index("django.contrib.sessions"), "django.contrib.messages"
    )
    MIDDLEWARE.insert(
        MIDDLEWARE.index("django.middleware.clickjacking.XFrameOptionsMiddleware"),
        "django.contrib.messages.middleware.MessageMiddleware",
    )
    # daphne serves no static files: WhiteNoise serves the admin's CSS and JavaScript
    # straight from the installed apps (their finders), so no collectstatic step is needed.
    MIDDLEWARE.insert(
        MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
        "whitenoise.middleware.WhiteNoiseMiddleware",
    )
    WHITENOISE_USE_FINDERS = True

ROOT_URLCONF = "dashboard_ai.urls"
ASGI_APPLICATION = "dashboard_ai.asgi.application"
TEMPLATES: list[dict[str, object]] = []
if ADMIN_ENABLED:
    TEMPLATES.append(
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "APP_DIRS": True,
            "OPTIONS": {
                "context_processors": [
                    "django.template.context_processors.request",
                    "django.contrib.auth.context_processors.auth",
                    "django.contrib.messages.context_processors.messages",
                ]
            },
        }
    )
STATIC_URL = "static/"

# SQLite (a file) on one machine; postgres://user:password@host:port/name (psycopg 3)
# for a deployment, where several servers share one database.
DATABASES: dict[str, dict[str, Any]] = {
    # The default is a URL; what comes back is the parsed entry.
    "default": cast(Any, read("DATABASE_URL", env.db_url, f"sqlite:///{BASE_DIR / 'db.sqlite3'}")),
}
# No persistent connections, whatever DATABASE_URL's query says (?conn_max_age=): under
# ASGI each HTTP request runs its ORM calls on a thread of its own that ends with the
# request (Django's ThreadSensitiveContext), so a connection kept past the request
# would be left open on a dead thread, one per request; Django's advice for ASGI is
# CONN_MAX_AGE=0. Consumers and runners share one ORM thread whose connection
# Channels closes before each frame it dispatches (queued on that thread, not waited
# for: chat.consumers.ChatConsumer.dispatch). There is no pool (psycopg_pool is
# not a dependency). CONN_HEALTH_CHECKS only checks connections reused across
# requests, of which there are none, so it stays off.
DATABASES["default"].update(CONN_MAX_AGE=0, CONN_HEALTH_CHECKS=False)
AUTO_MIGRATE = read_bool("AUTO_MIGRATE", True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"

REDIS_URL = read("REDIS_URL", env.str, "")
if REDIS_URL:
    # Channels keeps a receive open on every consumer's channel for the socket's whole
    # life; channels-redis makes it a BZPOPMIN the Redis server holds for 5 s
    # (RedisChannelLayer.brpop_timeout), then repeats. redis-py 8 gives every read a 5 s
    # socket_timeout by default (it was None), so the client gave up first and every
    # socket idle for 5 s died with 1011 (redis/redis-py#4091, channels_redis#422).
    # Reads must outlast that server-side wait; a bound (not None, as before 8) still
    # notices a Redis that stopped answering. Set here rather than pinning redis<8, so
    # it holds for every redis-py. A socket_timeout in REDIS_URL's query string wins.
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 15}]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# A cluster (issue: live cluster). SERVER_ID names this process among the servers that
# share REDIS_URL (default: host name, PID and a random part: unique to this start, so
# a restarted server never mistakes its predecessor's leases for its own).
# The owner of a session holds a lease on it in Redis for SESSION_LEASE_SECONDS and
# renews it while it lives; a dead owner's sessions are taken over once it expires.
SERVER_ID = read_name(
    "SERVER_ID", f"{socket.gethostname()[:48]}-{os.getpid()}-{secrets.token_hex(3)}"
)
SESSION_LEASE_SECONDS = read_float("SESSION_LEASE_SECONDS", 10.0, minimum=1.0)

# Security headers (issue: security hardening). Safe defaults that do not break
# plain-HTTP development; TLS-only switches are opt-in.
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SECURE_SSL_REDIRECT = read_bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = read_int("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = read_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = read_bool("SECURE_HSTS_PRELOAD", False)
# Behind TLS (SSL redirect on), cookies are HTTPS-only too.
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE = SECURE_SSL_REDIRECT
# Every answer is JSON, a CSRF refusal too (chat/api/errors.py; the handlers are wired in urls.py).
CSRF_FAILURE_VIEW = "chat.api.errors.csrf_failure"

# --- The model -------------------------------------------------------------
ANTHROPIC_API_KEY = read("ANTHROPIC_API_KEY", env.str, "")
ANTHROPIC_BASE_URL = read("ANTHROPIC_BASE_URL", env.str, "")
CLAUDE_MODEL = read("CLAUDE_MODEL", env.str, "")
CLAUDE_SYSTEM_PROMPT = read("CLAUDE_SYSTEM_PROMPT", env.str, "")
CLAUDE_MAX_TURNS = read_int("CLAUDE_MAX_TURNS", 30, minimum=1)
CLAUDE_MAX_BUDGET_USD = read_float("CLAUDE_MAX_BUDGET_USD", 2.0)
CLAUDE_CODE_MAX_RETRIES = read_int("CLAUDE_CODE_MAX_RETRIES", 2)
AGENT_IDLE_SECONDS = read_float("AGENT_IDLE_SECONDS", 300.0)
STOP_DEADLINE_SECONDS = read_float("STOP_DEADLINE_SECONDS", 5.0, minimum=0.5)
MODEL_STALL_SECONDS = read_float("MODEL_STALL_SECONDS", 60.0, minimum=1.0)
REPLAY_BUFFER_EVENTS = read_int("REPLAY_BUFFER_EVENTS", 2000, minimum=1)
REPLAY_BUFFER_BYTES = read_int("REPLAY_BUFFER_BYTES", 4 * 1024 * 1024, minimum=1024)
DATA_DIR = read("DATA_DIR", env.path, BASE_DIR / "var")

# --- Workspaces --------------------------------------------------------------
WORKSPACE_ROOT = read("WORKSPACE_ROOT", env.path, Path("/tmp/sessions"))
WORKSPACE_CLEANUP_HOURS = read_float("WORKSPACE_CLEANUP_HOURS", 24.0)
# Whole sessions (their rows, files, undo states and transcripts) unused this long are
# removed by cleanup_workspaces; 0: never. Unlike a copy, an expired session cannot come
# back, so the default is long: a month.
SESSION_EXPIRY_DAYS = read_float("SESSION_EXPIRY_DAYS", 30.0)
WORKSPACE_HISTORY_STATES = read_int("WORKSPACE_HISTORY_STATES", 20, minimum=1)
WORKSPACE_MAX_FILES = read_int("WORKSPACE_MAX_FILES", 500, minimum=1)
WORKSPACE_MAX_FILE_BYTES = read_int("WORKSPACE_MAX_FILE_BYTES", 5 * 1024 * 1024, minimum=1)
WORKSPACE_MAX_TOTAL_BYTES = read_int("WORKSPACE_MAX_TOTAL_BYTES", 20 * 1024 * 1024, minimum=1)
WORKSPACE_MAX_DEPTH = read_int("WORKSPACE_MAX_DEPTH", 32, minimum=1)
CHAT_MAX_FRAME_BYTES = read_int("CHAT_MAX_FRAME_BYTES", 32 * 1024 * 1024, minimum=1024)
CHAT_MAX_MESSAGE_CHARS = read_int("CHAT_MAX_MESSAGE_CHARS", 100_000, minimum=1)

# --- Access and capacity ---------------------------------------------------------
CHAT_AUTH_TOKEN = read("CHAT_AUTH_TOKEN", env.str, "")
# Who may use the server (docs/security.md, "Access"): none (anyone), token (one shared
# CHAT_AUTH_TOKEN), jwt (a bearer JWT per user), django (a Django login's session cookie).
AUTH_MODE = read_choice(
    "AUTH_MODE", "token" if CHAT_AUTH_TOKEN else "none", ("none", "token", "jwt", "django")
)
if (AUTH_MODE == "token") != bool(CHAT_AUTH_TOKEN):
    raise ConfigError("AUTH_MODE", "token needs CHAT_AUTH_TOKEN, and only token uses it")
# Per user, when the server has users (AUTH_MODE jwt or django); 0: no limit.
MAX_SESSIONS_PER_USER = read_int("MAX_SESSIONS_PER_USER", 10)
MAX_TURNS_PER_USER = read_int("MAX_TURNS_PER_USER", 2)
MAX_USD_PER_USER_PER_DAY = read_float("MAX_USD_PER_USER_PER_DAY", 20.0)
CHAT_RATE_PER_SECOND = read_float("CHAT_RATE_PER_SECOND", 10.0, minimum=0.1)
CHAT_RATE_BURST = read_int("CHAT_RATE_BURST", 30, minimum=1)
MAX_SOCKETS_PER_CLIENT = read_int("MAX_SOCKETS_PER_CLIENT", 20, minimum=1)
MAX_SESSIONS = read_int("MAX_SESSIONS", 200, minimum=1)
MAX_SESSIONS_PER_CLIENT = read_int("MAX_SESSIONS_PER_CLIENT", 20, minimum=1)
CHAT_MAX_SEND_BUFFER_BYTES = read_int("CHAT_MAX_SEND_BUFFER_BYTES", 64 * 1024 * 1024, minimum=1024)
MAX_LIVE_AGENTS = read_int("MAX_LIVE_AGENTS", 16, minimum=1)
AGENT_SLOT_WAIT_SECONDS = read_float("AGENT_SLOT_WAIT_SECONDS", 10.0)
AGENT_PREWARM = read_bool("AGENT_PREWARM", True)
# Below this much memory left (MiB; the machine's, or the server's cgroup's), idle CLIs
# are closed before another starts, and none is started ahead of a message; 0: never.
AGENT_MIN_AVAILABLE_MB = read_int("AGENT_MIN_AVAILABLE_MB", 512)

# Bearer JWTs (AUTH_MODE=jwt, chat/jwt_auth.py): the keys (a JWKS file, or an https://
# URL; http:// only to a loopback host), the issuer and audience every token must name,
# the clock skew allowed on exp/nbf, and the algorithms: asymmetric ones only.
AUTH_JWT_JWKS = read("AUTH_JWT_JWKS", env.str, "")
AUTH_JWT_ISSUER = read("AUTH_JWT_ISSUER", env.str, "")
AUTH_JWT_AUDIENCE = read("AUTH_JWT_AUDIENCE", env.str, "")
AUTH_JWT_LEEWAY_SECONDS = read_float("AUTH_JWT_LEEWAY_SECONDS", 30.0)
AUTH_JWT_ALGORITHMS = read("AUTH_JWT_ALGORITHMS", env.list, ["RS256", "ES256"])
if not AUTH_JWT_ALGORITHMS or set(AUTH_JWT_ALGORITHMS) - {"RS256", "ES256"}:
    raise ConfigError("AUTH_JWT_ALGORITHMS", f"must be RS256, ES256 or both: {AUTH_JWT_ALGORITHMS}")
_jwks_url = urlsplit(AUTH_JWT_JWKS) if "://" in AUTH_JWT_JWKS else None
if _jwks_url and not (
    (_jwks_url.scheme == "https" and _jwks_url.hostname)
    or (_jwks_url.scheme == "http" and _jwks_url.hostname in ("localhost", "127.0.0.1", "::1"))
):
    raise ConfigError("AUTH_JWT_JWKS", "must be a file path or an https:// URL")
if AUTH_MODE == "jwt":
    for _name, _value in (
        ("AUTH_JWT_JWKS", AUTH_JWT_JWKS),
        ("AUTH_JWT_ISSUER", AUTH_JWT_ISSUER),
        ("AUTH_JWT_AUDIENCE", AUTH_JWT_AUDIENCE),
    ):
        if not _value:
            raise ConfigError(_name, "is required when AUTH_MODE=jwt")

# --- Metrics -----------------------------------------------------------------
# Prometheus metrics (chat/metrics.py): off (GET /metrics is a 404), token (GET /metrics
# on the main port with "Authorization: Bearer <METRICS_TOKEN>"), or port (a plain HTTP
# exposition server of its own on METRICS_HOST:METRICS_PORT; /metrics on the main port
# is a 404).
METRICS_MODE = read_choice("METRICS_MODE", "off", ("off", "token", "port"))
METRICS_TOKEN = read("METRICS_TOKEN", env.str, "")
if METRICS_MODE == "token" and len(METRICS_TOKEN) < 16:
    raise ConfigError(
        "METRICS_TOKEN", "must be set, 16 characters or more, when METRICS_MODE=token"
    )
METRICS_HOST = read("METRICS_HOST", env.str, "127.0.0.1")
METRICS_PORT = read_int("METRICS_PORT", 9100, minimum=1)
if METRICS_PORT > 65535:
    raise ConfigError("METRICS_PORT", f"must be at most 65535, got {METRICS_PORT}")

# --- Logging -----------------------------------------------------------------
LOG_LEVEL = read_choice("LOG_LEVEL", "INFO", ("debug", "info", "warning", "error")).upper()
LOG_FORMAT = read_choice("LOG_FORMAT", "text" if DEBUG else "json", ("text", "json"))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # structlog renders every record (fields from extra=, secrets redacted last): see
    # dashboard_ai/logging.py.
    "formatters": {
        "text": {"()": "dashboard_ai.logging.formatter", "fmt": "text"},
        "json": {"()": "dashboard_ai.logging.formatter", "fmt": "json"},
    },
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": LOG_FORMAT,
        }
    },
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {
        # daphne logs every request itself; ours carries the duration and status.
        "django.server": {"level": "WARNING"},
        "daphne": {"level": "WARNING"},
    },
}
