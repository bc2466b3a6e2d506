"""Verification of bearer JWTs (``AUTH_MODE=jwt``) against a JWKS: who the caller is.

A token is accepted when its header names an allowed asymmetric algorithm
(``AUTH_JWT_ALGORITHMS``: RS256, ES256; never HS*, never ``none``) that matches the
type of the key its ``kid`` picks from the JWKS, its signature verifies with that key,
``exp`` is present and, with ``nbf``, holds with ``AUTH_JWT_LEEWAY_SECONDS`` of leeway, ``iss`` and
``aud`` are the configured ones and ``sub`` is a non-empty string. Anything else raises
:class:`InvalidToken`, whose ``reason`` says why in one stable word.

Keys come from ``AUTH_JWT_JWKS``: a file, or an ``https://`` URL (plain ``http://`` only
to a loopback address, for tests and local providers). They are kept by key id. A token
with a ``kid`` not in the set makes the verifier look again: a file is re-read when it
changed (mtime, size or inode), a URL is fetched again at most once per
``refresh_seconds``, so a flood of made-up key ids cannot hammer the provider. The set
is also looked at again once it is older than ``max_age_seconds``, so a key the provider
withdrew stops verifying; when that fails, the keys already known are kept.

Looking at the JWKS is blocking I/O: :func:`averify` does it on a worker thread and
checks a token whose key is known right on the event loop. A token is never logged;
a refusal logs its reason and key id.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import urlsplit

import jwt
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from jwt import exceptions as errors

logger = logging.getLogger(__name__)

#: The algorithms a token may be signed with: asymmetric only, whatever the settings say.
SUPPORTED_ALGORITHMS = ("RS256", "ES256")

Reason = Literal[
    "malformed",
    "bad_algorithm",
    "unknown_key",
    "keys_unavailable",
    "bad_signature",
    "expired",
    "no_expiry",
    "not_yet_valid",
    "wrong_issuer",
    "wrong_audience",
    "no_subject",
]

#: Longest token looked at (a Firebase ID token is about 1 KB).
MAX_TOKEN_CHARS = 16 * 1024
#: Largest JWKS document read from a file or a URL.
MAX_JWKS_BYTES = 1024 * 1024
#: The hosts a plain ``http://`` JWKS URL may name (tests, a provider on the same machine).
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class Claims:
    """The verified claims of a token: who (``subject``), until when, and all of them."""

    subject: str
    #: ``exp`` as seconds since the epoch; None when the token has no ``exp``.
    expires_at: float | None
    raw: Mapping[str, Any]


class InvalidToken(Exception):
    """The token was refused; ``reason`` says why, ``kid`` is its key id if it had one."""

    def __init__(self, reason: Reason, *, kid: str | None = None) -> None:
        super().__init__(reason)
        self.reason: Reason = reason
        self.kid = kid


class JwksError(Exception):
    """The JWKS could not be read, fetched or parsed."""


class _NeedsFetch(Exception):
    """Checking this token needs the JWKS looked at again (blocking I/O)."""


def jwks_location_problem(location: str) -> str | None:
    """Why ``location`` cannot be a JWKS location, or None when it can.

    An ``https://`` URL, a plain ``http://`` URL to a loopback host, or a file path.
    """
    if not location:
        return "is empty"
    if "://" not in location:
        return None
    parts = urlsplit(location)
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS:
        return None
    return "must be a file path or an https:// URL (http:// only to a loopback address)"


class _FileJwks:
    """A JWKS in a file, read again only when its mtime, size or inode changed."""

    #: A file is cheap to look at: no lower bound between two looks.
    rate_limited = False

    def __init__(self, path: Path) -> None:
        self.path = path
        self._signature: tuple[int, int, int] | None = None

    def load(self) -> dict[str, Any] | None:
        """The JWKS document, or None when the file is unchanged since the last load."""
        try:
            stat = self.path.stat()
            signature = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
            if signature == self._signature:
                return None
            if stat.st_size > MAX_JWKS_BYTES:
                raise JwksError(f"larger than {MAX_JWKS_BYTES} bytes")
            document = _parse(self.path.read_bytes())
        except OSError as exc:
            raise JwksError(f"cannot read the file: {exc.strerror}") from None
        self._signature = signature
        return document


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Refuse redirects: the JWKS is fetched from exactly the configured URL."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class _UrlJwks:
    """A JWKS at a URL, fetched with a timeout, without following redirects."""

    rate_limited = True

    def __init__(self, url: str, *, timeout: float) -> None:
        self.url = url
        self.timeout = timeout
        self._opener = urllib.request.build_opener(_NoRedirects)

    def load(self) -> dict[str, Any] | None:
        """The JWKS document fetched now."""
        request = urllib.request.Request(
            self.url, headers={"Accept": "application/json", "User-Agent": "dashboard-ai"}
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                body = response.read(MAX_JWKS_BYTES + 1)
        except urllib.error.HTTPError as exc:
            raise JwksError(f"the server answered {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise JwksError(f"cannot fetch: {getattr(exc, 'reason', exc)}") from None
        if len(body) > MAX_JWKS_BYTES:
            raise JwksError(f"larger than {MAX_JWKS_BYTES} bytes")
        return _parse(body)


def _parse(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise JwksError("not JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise JwksError('not a JWKS (no "keys" list)')
    return document


def _signing_keys(document: dict[str, Any], algorithms: tuple[str, ...]) -> dict[str, jwt.PyJWK]:
    """The keys of a JWKS document usable to verify: by ``kid``, for an allowed algorithm.

    A key's algorithm is its ``alg``, or what its type implies (RSA: RS256, EC P-256:
    ES256, oct: HS256, never allowed). Keys without a ``kid``, meant for encryption
    (``use: enc``) or that do not parse are left out.
    """
    keys: dict[str, jwt.PyJWK] = {}
    for entry in document["keys"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
            continue
        if entry.get("use", "sig") != "sig":
            continue
        try:
            key = jwt.PyJWK(entry)
        except jwt.PyJWTError:
            continue
        if key.algorithm_name in algorithms:
            keys[entry["kid"]] = key
    return keys


class JwtVerifier:
    """Verifies tokens against one JWKS, issuer and audience; safe to share between threads."""

    def __init__(
        self,
        *,
        jwks: str,
        issuer: str,
        audience: str,
        leeway_seconds: float = 30.0,
        algorithms: tuple[str, ...] = SUPPORTED_ALGORITHMS,
        refresh_seconds: float = 60.0,
        max_age_seconds: float = 600.0,
        fetch_timeout_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if problem := jwks_location_problem(jwks):
            raise ImproperlyConfigured(f"AUTH_JWT_JWKS {problem}")
        if not issuer or not audience:
            raise ImproperlyConfigured("AUTH_JWT_ISSUER and AUTH_JWT_AUDIENCE are required")
        unsupported = set(algorithms) - set(SUPPORTED_ALGORITHMS)
        if unsupported or not algorithms:
            raise ImproperlyConfigured(
                f"AUTH_JWT_ALGORITHMS must be among {', '.join(SUPPORTED_ALGORITHMS)}"
            )
        self._source: _FileJwks | _UrlJwks = (
            _UrlJwks(jwks, timeout=fetch_timeout_seconds)
            if "://" in jwks
            else _FileJwks(Path(jwks))
        )
        self.issuer = issuer
        self.audience = audience
        self.leeway_seconds = leeway_seconds
        self.algorithms = tuple(algorithms)
        self.refresh_seconds = refresh_seconds
        self.max_age_seconds = max_age_seconds
        self._clock = clock
        self._lock = threading.Lock()
        # Replaced whole on every load, never changed in place: read without the lock.
        self._keys: dict[str, jwt.PyJWK] = {}
        self._loaded_at: float | None = None
        self._attempted_at: float | None = None
        self._last_load_failed = False
        self._loading = False
        # The one thread that reads the JWKS for averify (started on first use). Not the
        # loop's default executor: while a slow provider is fetched (up to the timeout),
        # the tokens waiting for it queue here, not on threads the rest of the server
        # needs; when the fetch is done each finds the keys loaded (or is rate-limited).
        self._fetcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jwks")

    # --- public -----------------------------------------------------------------

    def verify(self, token: str) -> Claims:
        """The claims of ``token``, or :class:`InvalidToken`. May read the JWKS (blocking)."""
        return self._verify(token, may_fetch=True)

    async def averify(self, token: str) -> Claims:
        """:meth:`verify` for the event loop: the JWKS is only ever read on a worker thread."""
        try:
            return self._verify(token, may_fetch=False)
        except _NeedsFetch:
            loop = asyncio.get_running_loop()
            call = functools.partial(self._verify, token, may_fetch=True)
            return await loop.run_in_executor(self._fetcher, call)

    # --- verification -------------------------------------------------------------

    def _verify(self, token: str, *, may_fetch: bool) -> Claims:
        kid: str | None = None
        try:
            if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
                raise InvalidToken("malformed")
            try:
                header = jwt.get_unverified_header(token)
            except jwt.PyJWTError:
                raise InvalidToken("malformed") from None
            kid = header.get("kid") if isinstance(header.get("kid"), str) else None
            algorithm = header.get("alg")
            if algorithm not in self.algorithms:
                raise InvalidToken("bad_algorithm", kid=kid)
            if kid is None:
                raise InvalidToken("unknown_key")
            key = self._key(kid, may_fetch=may_fetch)
            if key.algorithm_name != algorithm:
                # An RS256 header on an EC key, or the reverse: never let the token choose.
                raise InvalidToken("bad_algorithm", kid=kid)
            return self._decode(token, key, algorithm, kid)
        except InvalidToken as refused:
            logger.info(
                "jwt refused", extra={"reason": refused.reason, "kid": _printable(refused.kid)}
            )
            raise

    def _decode(self, token: str, key: jwt.PyJWK, algorithm: str, kid: str) -> Claims:
        try:
            payload = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_seconds,
                options={
                    # A token without exp would stay valid for ever, open sockets included.
                    "require": ["exp", "iss", "aud", "sub"],
                    "enforce_minimum_key_length": True,
                },
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(_reason(exc), kid=kid) from None
        for name in ("exp", "nbf", "iat"):
            value = payload.get(name)
            if name in payload and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise InvalidToken("malformed", kid=kid)
        subject = payload.get("sub")
        if not isinstance(subject, str) or not subject:
            raise InvalidToken("no_subject", kid=kid)
        expires_at = float(payload["exp"]) if "exp" in payload else None
        return Claims(subject=subject, expires_at=expires_at, raw=MappingProxyType(payload))

    # --- keys -----------------------------------------------------------------------

    def _key(self, kid: str, *, may_fetch: bool) -> jwt.PyJWK:
        key = self._keys.get(kid)
        due = self._load_due()
        # An unknown kid waits for a load in progress (a burst of sockets at start-up all
        # wait for the first fetch, instead of being refused while it runs); a known key
        # is used while a fresher set is on its way.
        if (key is None and (due or self._loading)) or (key is not None and due and self._stale()):
            if not may_fetch:
                raise _NeedsFetch
            with self._lock:
                # Another thread may have loaded while this one waited for the lock.
                if self._load_due() and (kid not in self._keys or self._stale()):
                    self._load()
            key = self._keys.get(kid)
        if key is None:
            unavailable = self._last_load_failed and not self._keys
            raise InvalidToken("keys_unavailable" if unavailable else "unknown_key", kid=kid)
        return key

    def _stale(self) -> bool:
        return self._loaded_at is None or self._clock() - self._loaded_at >= self.max_age_seconds

    def _load_due(self) -> bool:
        if self._attempted_at is None or not self._source.rate_limited:
            return True
        return self._clock() - self._attempted_at >= self.refresh_seconds

    def _load(self) -> None:
        """Look at the JWKS again (under the lock); on failure keep the keys known."""
        self._loading = True
        try:
            self._attempted_at = self._clock()
            try:
                document = self._source.load()
            except JwksError as exc:
                self._last_load_failed = True
                logger.warning("jwks unavailable", extra={"problem": str(exc)})
                return
            self._last_load_failed = False
            self._loaded_at = self._clock()
            if document is None:
                return
            keys = _signing_keys(document, self.algorithms)
            if not keys:
                logger.warning(
                    "jwks has no usable signing key", extra={"algorithms": self.algorithms}
                )
            self._keys = keys
            logger.info("jwks loaded", extra={"kids": sorted(keys)})
        finally:
            # Last: a token that saw no load in progress finds the keys of this one.
            self._loading = False


def _reason(exc: errors.PyJWTError) -> Reason:
    """The :data:`Reason` for one of PyJWT's refusals."""
    if isinstance(exc, errors.InvalidSignatureError):
        return "bad_signature"
    if isinstance(exc, errors.ExpiredSignatureError):
        return "expired"
    if isinstance(exc, errors.ImmatureSignatureError):
        return "not_yet_valid"
    if isinstance(exc, errors.InvalidIssuerError):
        return "wrong_issuer"
    if isinstance(exc, errors.InvalidAudienceError):
        return "wrong_audience"
    if isinstance(exc, errors.InvalidSubjectError):
        return "no_subject"
    if isinstance(exc, errors.MissingRequiredClaimError):
        missing: dict[str, Reason] = {
            "iss": "wrong_issuer",
            "aud": "wrong_audience",
            "sub": "no_subject",
            "exp": "no_expiry",
        }
        return missing.get(exc.claim, "malformed")
    if isinstance(exc, errors.InvalidAlgorithmError):
        return "bad_algorithm"
    if isinstance(exc, errors.InvalidKeyError):
        return "unknown_key"
    return "malformed"


def _printable(kid: str | None) -> str | None:
    """A key id fit for a log line: the client chose it, so short and printable."""
    if kid is None:
        return None
    return "".join(c if c.isprintable() else "?" for c in kid[:64])


# --- the verifier of the settings --------------------------------------------------

_verifier: JwtVerifier | None = None
_verifier_lock = threading.Lock()


def get_verifier() -> JwtVerifier:
    """The verifier built from the ``AUTH_JWT_*`` settings (one per process)."""
    global _verifier
    with _verifier_lock:
        if _verifier is None:
            _verifier = JwtVerifier(
                jwks=settings.AUTH_JWT_JWKS,
                issuer=settings.AUTH_JWT_ISSUER,
                audience=settings.AUTH_JWT_AUDIENCE,
                leeway_seconds=settings.AUTH_JWT_LEEWAY_SECONDS,
                algorithms=tuple(settings.AUTH_JWT_ALGORITHMS),
            )
        return _verifier


def verify(token: str) -> Claims:
    """Verify ``token`` with the settings' verifier; may block on the JWKS (not on the loop)."""
    return get_verifier().verify(token)


async def averify(token: str) -> Claims:
    """Verify ``token`` with the settings' verifier, from the event loop."""
    return await get_verifier().averify(token)


@receiver(setting_changed)
def _forget_verifier(*, setting: str, **kwargs: Any) -> None:
    """A test that overrides an ``AUTH_JWT_*`` setting gets a verifier built from it."""
    global _verifier
    if setting.startswith("AUTH_JWT_"):
        with _verifier_lock:
            _verifier = None
