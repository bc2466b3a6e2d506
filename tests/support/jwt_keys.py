"""Signing keys made by the test, their JWKS, and tokens minted with them (AUTH_MODE=jwt).

``SigningKey.rsa("k1")`` / ``SigningKey.ec("k2")`` make a key pair; ``write_jwks(path,
keys)`` writes their public halves as a JWKS file (replaced atomically, so a verifier
sees a new inode); ``key.mint(sub=...)`` signs a token with standard claims (``ISSUER``,
``AUDIENCE``, ``iat``, ``exp`` five minutes on) that any claim keyword overrides, or
removes when given as ``None``. ``hand_built`` assembles a token from raw parts, for
the ones PyJWT refuses to sign (``alg: none``, HS256 keyed with a public key);
``tampered(token)`` is a token with one character of its signature changed.
``server_settings(jwks)`` is the environment of a live server trusting a JWKS file.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

ISSUER = "https://issuer.test/dashboard"
AUDIENCE = "dashboard-ai-test"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class SigningKey:
    kid: str
    algorithm: str
    private_key: Any

    @classmethod
    def rsa(cls, kid: str) -> SigningKey:
        return cls(kid, "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))

    @classmethod
    def ec(cls, kid: str) -> SigningKey:
        return cls(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))

    def public_jwk(self) -> dict[str, Any]:
        algorithm = RSAAlgorithm if self.algorithm == "RS256" else ECAlgorithm
        jwk = algorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "use": "sig"}

    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def mint(self, *, kid: str | None = None, **claims: Any) -> str:
        """A token signed with this key; ``kid`` overrides the header's key id."""
        payload = {k: v for k, v in standard_claims(**claims).items() if v is not None}
        headers = {"kid": self.kid if kid is None else kid}
        return jwt.encode(payload, self.private_key, algorithm=self.algorithm, headers=headers)


def write_jwks(path: Path, keys: list[SigningKey]) -> Path:
    """Write the public JWKS of ``keys`` to ``path`` (atomically: a new file each time)."""
    staging = path.with_name(path.name + ".tmp")
    staging.write_text(json.dumps({"keys": [key.public_jwk() for key in keys]}))
    staging.replace(path)
    return path


def hand_built(
    header: dict[str, Any], payload: dict[str, Any], *, hs256_secret: bytes | None = None
) -> str:
    """A token from raw parts: unsigned (empty signature), or HMAC-SHA256 with ``hs256_secret``."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"
    signature = b""
    if hs256_secret is not None:
        signature = hmac.new(hs256_secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def tampered(token: str) -> str:
    """``token`` with one character in the middle of its signature changed."""
    head, payload, signature = token.split(".")
    middle = len(signature) // 2
    flipped = "A" if signature[middle] != "A" else "B"
    return f"{head}.{payload}.{signature[:middle]}{flipped}{signature[middle + 1 :]}"


def server_settings(jwks: Path) -> dict[str, str]:
    """The environment of a server in ``AUTH_MODE=jwt`` that trusts the keys of ``jwks``."""
    return {
        "AUTH_MODE": "jwt",
        "AUTH_JWT_JWKS": str(jwks),
        "AUTH_JWT_ISSUER": ISSUER,
        "AUTH_JWT_AUDIENCE": AUDIENCE,
    }


def standard_claims(**claims: Any) -> dict[str, Any]:
    """The claims :meth:`SigningKey.mint` uses, for hand-built tokens."""
    now = int(time.time())
    payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": "user-a", "iat": now, "exp": now + 300}
    payload.update(claims)
    return payload
