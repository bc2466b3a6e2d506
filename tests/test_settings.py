"""Settings come from the environment, and every variable is documented."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from tests.support.live import ROOT


def settings_in(env: dict[str, str], expression: str) -> object:
    code = (
        "import json; from django.conf import settings; "
        f"print(json.dumps({expression}, default=str))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], "DJANGO_SETTINGS_MODULE": "dashboard_ai.settings", **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)


def test_every_variable_read_by_settings_is_in_env_example() -> None:
    source = (ROOT / "dashboard_ai" / "settings.py").read_text()
    read = set(re.findall(r'read(?:_\w+)?\(\s*"([A-Z][A-Z0-9_]+)"', source))
    documented = set(re.findall(r"^([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert read, "no variables found: the pattern no longer matches settings.py"
    assert read - documented == set()
    assert documented - read == set()


def test_in_memory_channel_layer_by_default_and_redis_with_redis_url() -> None:
    backend = 'settings.CHANNEL_LAYERS["default"]["BACKEND"]'
    assert settings_in({}, backend) == "channels.layers.InMemoryChannelLayer"
    assert (
        settings_in({"REDIS_URL": "redis://127.0.0.1:6379/0"}, backend)
        == "channels_redis.core.RedisChannelLayer"
    )


def test_database_url_overrides_sqlite(tmp_path) -> None:
    engine = 'settings.DATABASES["default"]["ENGINE"]'
    assert settings_in({}, engine) == "django.db.backends.sqlite3"
    assert (
        settings_in({"DATABASE_URL": "postgres://u:p@127.0.0.1:5432/db"}, engine)
        == "django.db.backends.postgresql"
    )


def test_a_postgres_url_uses_psycopg_3_and_never_persistent_connections() -> None:
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    database = settings_in(
        {"DATABASE_URL": "postgres://u:p@db.internal:6543/chat?conn_max_age=600"},
        'settings.DATABASES["default"]',
    )
    assert is_psycopg3
    assert database["ENGINE"] == "django.db.backends.postgresql"
    assert (database["HOST"], database["PORT"], database["NAME"]) == ("db.internal", 6543, "chat")
    # Under ASGI a kept connection outlives its request's thread (dashboard_ai/settings.py).
    assert database["CONN_MAX_AGE"] == 0


def test_cors_origin_accepts_a_comma_separated_list() -> None:
    origins = settings_in(
        {"CORS_ORIGIN": "http://localhost:2500,https://app.example"},
        "settings.CORS_ALLOWED_ORIGINS",
    )
    assert origins == ["http://localhost:2500", "https://app.example"]
