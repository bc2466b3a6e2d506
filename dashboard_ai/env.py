"""Typed environment reads that fail with one clear line instead of a traceback.

Settings are read once, at import of ``dashboard_ai.settings``. A wrong value there
(``PORT=abc``, a negative limit) must stop start-up with a message naming the
variable, so every read goes through :func:`read` which turns a parse failure into
:class:`SystemExit`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import environ

T = TypeVar("T")

NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")

env = environ.Env()


class ConfigError(SystemExit):
    """A setting read from the environment is invalid; start-up stops."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"Invalid configuration: {name} {problem}")
        self.name = name


def load_dotenv(path: Path) -> None:
    """Read ``path`` into the environment when it exists; real variables win."""
    if path.is_file():
        environ.Env.read_env(str(path), overwrite=False)


def read(name: str, cast: Callable[..., T], default: T, **kwargs: Any) -> T:
    """Read ``name`` with django-environ's ``cast`` reader, or stop start-up."""
    try:
        return cast(name, default=default, **kwargs)
    except (ValueError, TypeError, environ.ImproperlyConfigured) as exc:
        raw = env.str(name, default="")
        raise ConfigError(name, f"has an invalid value {raw!r}: {exc}") from None


def read_name(name: str, default: str) -> str:
    """A name that may go into Redis keys and channel names: 1-64 of ``A-Za-z0-9._-``."""
    value = read(name, env.str, "") or default
    if not NAME.fullmatch(value):
        raise ConfigError(name, f"must be 1-64 of A-Z a-z 0-9 . _ - (got {value!r})")
    return value


def read_int(name: str, default: int, *, minimum: int = 0) -> int:
    """An integer of at least ``minimum``."""
    value = read(name, env.int, default)
    if value < minimum:
        raise ConfigError(name, f"must be at least {minimum}, got {value}")
    return value


def read_float(name: str, default: float, *, minimum: float = 0.0) -> float:
    """A number of at least ``minimum``."""
    value = read(name, env.float, default)
    if value < minimum:
        raise ConfigError(name, f"must be at least {minimum}, got {value}")
    return value


TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off", "")


def read_bool(name: str, default: bool) -> bool:
    """A boolean spelled true/false, yes/no, on/off or 1/0."""
    value = read(name, env.str, "true" if default else "false").strip().lower()
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    raise ConfigError(name, f"must be true or false, got {value!r}")


def read_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    """One of ``choices``, case-insensitive."""
    value = read(name, env.str, default).strip().lower() or default.lower()
    if value not in choices:
        raise ConfigError(name, f"must be one of {', '.join(choices)}, got {value!r}")
    return value
