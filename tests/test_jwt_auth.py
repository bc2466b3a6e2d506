"""Bearer JWTs (chat/jwt_auth.py): which tokens are accepted, which refused and why, and
how the keys are found (a JWKS file, or a URL served here on 127.0.0.1; no network)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.exceptions import ImproperlyConfigured

from chat import jwt_auth
from chat.jwt_auth import InvalidToken, JwtVerifier
from tests.support.jwt_keys import (
    AUDIENCE,
    ISSUER,
    SigningKey,
    b64url,
    hand_built,
    standard_claims,
    write_jwks,
)
from tests.support.live import ROOT


@pytest.fixture(scope="module")
def rsa_key() -> SigningKey:
    return SigningKey.rsa("rsa-1")


@pytest.fixture(scope="module")
def ec_key() -> SigningKey:
    return SigningKey.ec("ec-1")


@pytest.fixture
def jwks_file(tmp_path, rsa_key, ec_key):
    return write_jwks(tmp_path / "jwks.json", [rsa_key, ec_key])


def file_verifier(path, **options) -> JwtVerifier:
    return JwtVerifier(jwks=str(path), issuer=ISSUER, audience=AUDIENCE, **options)


def refusal(verifier: JwtVerifier, token: str) -> str:
    with pytest.raises(InvalidToken) as refused:
        verifier.verify(token)
    return refused.value.reason


# --- accepted ------------------------------------------------------------------------


@pytest.mark.parametrize("key_name", ["rsa_key", "ec_key"])
def test_a_valid_token_gives_its_subject_and_expiry(request, jwks_file, key_name) -> None:
    key = request.getfixturevalue(key_name)
    expires = int(time.time()) + 300
    claims = file_verifier(jwks_file).verify(key.mint(sub="alice", exp=expires, role="x"))
    assert claims.subject == "alice"
    assert claims.expires_at == float(expires)
    assert claims.raw["role"] == "x"
    assert claims.raw["iss"] == ISSUER


def test_a_token_without_iat_is_accepted(jwks_file, rsa_key) -> None:
    assert file_verifier(jwks_file).verify(rsa_key.mint(iat=None)).subject == "user-a"


def test_a_token_without_exp_is_refused(jwks_file, rsa_key) -> None:
    assert refusal(file_verifier(jwks_file), rsa_key.mint(exp=None)) == "no_expiry"


def test_an_audience_list_naming_ours_is_accepted(jwks_file, rsa_key) -> None:
    token = rsa_key.mint(aud=["someone-else", AUDIENCE])
    assert file_verifier(jwks_file).verify(token).subject == "user-a"


# --- refused, by claim -------------------------------------------------------------------

NOW = int(time.time())


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"exp": NOW - 3600}, "expired"),
        ({"nbf": NOW + 3600}, "not_yet_valid"),
        ({"iat": NOW + 3600}, "not_yet_valid"),
        ({"iss": "https://someone-else.test"}, "wrong_issuer"),
        ({"iss": None}, "wrong_issuer"),
        ({"aud": "someone-else"}, "wrong_audience"),
        ({"aud": None}, "wrong_audience"),
        ({"sub": None}, "no_subject"),
        ({"sub": ""}, "no_subject"),
        ({"sub": 42}, "no_subject"),
        ({"exp": "9999999999"}, "malformed"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_a_token_with_bad_claims_is_refused(jwks_file, rsa_key, ec_key, claims, reason) -> None:
    verifier = file_verifier(jwks_file)
    assert refusal(verifier, rsa_key.mint(**claims)) == reason
    assert refusal(verifier, ec_key.mint(**claims)) == reason


def test_expiry_is_checked_with_the_leeway(jwks_file, rsa_key) -> None:
    verifier = file_verifier(jwks_file, leeway_seconds=30)
    now = int(time.time())
    assert verifier.verify(rsa_key.mint(exp=now - 10)).subject == "user-a"
    assert refusal(verifier, rsa_key.mint(exp=now - 60)) == "expired"
    assert verifier.verify(rsa_key.mint(nbf=now + 10)).subject == "user-a"
    assert refusal(verifier, rsa_key.mint(nbf=now + 60)) == "not_yet_valid"


# --- refused, by signature, key or algorithm ------------------------------------------------


def test_an_unknown_key_id_is_refused(jwks_file, rsa_key) -> None:
    assert refusal(file_verifier(jwks_file), rsa_key.mint(kid="nobody")) == "unknown_key"


def test_a_token_without_key_id_is_refused(jwks_file, rsa_key) -> None:
    token = hand_built({"alg": "RS256"}, standard_claims())
    assert refusal(file_verifier(jwks_file), token) == "unknown_key"


def test_a_key_not_in_the_jwks_is_refused_even_with_a_known_key_id(jwks_file) -> None:
    impostor = SigningKey.rsa("rsa-1")
    assert refusal(file_verifier(jwks_file), impostor.mint()) == "bad_signature"


@pytest.mark.parametrize("key_name", ["rsa_key", "ec_key"])
def test_a_tampered_signature_is_refused(request, jwks_file, key_name) -> None:
    token = request.getfixturevalue(key_name).mint()
    head, payload, signature = token.split(".")
    # A character in the middle: the last one may only carry padding bits.
    middle = len(signature) // 2
    flipped = "A" if signature[middle] != "A" else "B"
    tampered = f"{head}.{payload}.{signature[:middle]}{flipped}{signature[middle + 1 :]}"
    assert refusal(file_verifier(jwks_file), tampered) == "bad_signature"


def test_a_tampered_payload_is_refused(jwks_file, rsa_key) -> None:
    head, _, signature = rsa_key.mint(sub="user-a").split(".")
    forged = b64url(json.dumps(standard_claims(sub="admin")).encode())
    assert refusal(file_verifier(jwks_file), f"{head}.{forged}.{signature}") == "bad_signature"


def test_alg_none_is_refused(jwks_file, rsa_key) -> None:
    for alg in ("none", "None", "NONE"):
        token = hand_built({"alg": alg, "typ": "JWT", "kid": rsa_key.kid}, standard_claims())
        assert refusal(file_verifier(jwks_file), token) == "bad_algorithm"


def test_hs256_keyed_with_the_public_key_is_refused(jwks_file, rsa_key) -> None:
    header = {"alg": "HS256", "typ": "JWT", "kid": rsa_key.kid}
    token = hand_built(header, standard_claims(), hs256_secret=rsa_key.public_pem())
    assert refusal(file_verifier(jwks_file), token) == "bad_algorithm"


def test_an_algorithm_that_does_not_match_the_key_type_is_refused(
    jwks_file, rsa_key, ec_key
) -> None:
    # Signed by the RSA key, but naming the EC key: RS256 on an EC key is never tried.
    assert refusal(file_verifier(jwks_file), rsa_key.mint(kid=ec_key.kid)) == "bad_algorithm"


def test_an_algorithm_left_out_of_the_settings_is_refused(jwks_file, rsa_key, ec_key) -> None:
    verifier = file_verifier(jwks_file, algorithms=("RS256",))
    assert verifier.verify(rsa_key.mint()).subject == "user-a"
    assert refusal(verifier, ec_key.mint()) == "bad_algorithm"


def test_a_symmetric_key_in_the_jwks_is_never_used(tmp_path, rsa_key) -> None:
    secret = b"a shared secret of thirty-two bytes!"
    octet = {"kty": "oct", "kid": "shared", "k": b64url(secret)}
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [octet, rsa_key.public_jwk()]}))
    header = {"alg": "HS256", "kid": "shared"}
    token = hand_built(header, standard_claims(), hs256_secret=secret)
    assert refusal(file_verifier(path), token) == "bad_algorithm"
    verifier = file_verifier(path)
    token_rs = hand_built({"alg": "RS256", "kid": "shared"}, standard_claims())
    assert refusal(verifier, token_rs) == "unknown_key"


@pytest.mark.parametrize(
    "garbage", ["", "garbage", "a.b.c", "a.b", "...", "x" * 20_000, "eyJhbGciOiJSUzI1NiJ9.e30"]
)
def test_garbage_is_malformed(jwks_file, garbage) -> None:
    assert refusal(file_verifier(jwks_file), garbage) == "malformed"


def test_a_refusal_logs_its_reason_and_key_id_never_the_token(jwks_file, rsa_key, caplog) -> None:
    token = rsa_key.mint(exp=int(time.time()) - 3600)
    with caplog.at_level(logging.INFO, logger="chat.jwt_auth"):
        refusal(file_verifier(jwks_file), token)
    refused = [r for r in caplog.records if r.getMessage() == "jwt refused"]
    assert [(r.reason, r.kid) for r in refused] == [("expired", "rsa-1")]
    for record in caplog.records:
        assert token not in f"{record.getMessage()} {vars(record)}"
        assert token.split(".")[2] not in f"{record.getMessage()} {vars(record)}"


# --- the keys: a file ---------------------------------------------------------------------


def test_a_key_added_to_the_jwks_file_is_picked_up(tmp_path, rsa_key) -> None:
    path = write_jwks(tmp_path / "jwks.json", [rsa_key])
    verifier = file_verifier(path)
    rotated = SigningKey.ec("ec-2")
    assert verifier.verify(rsa_key.mint()).subject == "user-a"
    assert refusal(verifier, rotated.mint()) == "unknown_key"
    write_jwks(path, [rsa_key, rotated])
    assert verifier.verify(rotated.mint(sub="bob")).subject == "bob"


def test_a_key_removed_from_the_file_stops_verifying_once_the_set_is_old(tmp_path, rsa_key) -> None:
    clock = FakeClock()
    path = write_jwks(tmp_path / "jwks.json", [rsa_key])
    verifier = file_verifier(path, max_age_seconds=600, clock=clock)
    assert verifier.verify(rsa_key.mint()).subject == "user-a"
    write_jwks(path, [SigningKey.ec("ec-2")])
    assert verifier.verify(rsa_key.mint()).subject == "user-a"  # the set is still fresh
    clock.now += 601
    assert refusal(verifier, rsa_key.mint()) == "unknown_key"


def test_a_missing_jwks_file_is_keys_unavailable_until_it_appears(tmp_path, rsa_key) -> None:
    path = tmp_path / "jwks.json"
    verifier = file_verifier(path)
    assert refusal(verifier, rsa_key.mint()) == "keys_unavailable"
    write_jwks(path, [rsa_key])
    assert verifier.verify(rsa_key.mint()).subject == "user-a"


def test_an_unchanged_file_is_not_read_again(jwks_file, rsa_key, monkeypatch) -> None:
    verifier = file_verifier(jwks_file)
    verifier.verify(rsa_key.mint())
    reads = []
    original = type(jwks_file).read_bytes
    monkeypatch.setattr(
        type(jwks_file), "read_bytes", lambda self: reads.append(self) or original(self)
    )
    for kid in ("x1", "x2", "x3"):
        assert refusal(verifier, rsa_key.mint(kid=kid)) == "unknown_key"
    assert reads == []


# --- the keys: a URL -------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class JwksServer:
    """A JWKS served over HTTP on 127.0.0.1, counting the requests it answers."""

    def __init__(self, keys: list[SigningKey]) -> None:
        self.keys = keys
        self.requests = 0
        self.status = 200
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests += 1
                body = json.dumps({"keys": [k.public_jwk() for k in server.keys]}).encode()
                self.send_response(server.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/jwks.json"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def jwks_server(rsa_key):
    server = JwksServer([rsa_key])
    yield server
    server.close()


def url_verifier(server: JwksServer, clock: FakeClock, **options) -> JwtVerifier:
    return JwtVerifier(
        jwks=server.url,
        issuer=ISSUER,
        audience=AUDIENCE,
        clock=clock,
        refresh_seconds=60,
        **options,
    )


def test_a_jwks_url_is_fetched_once_for_known_keys(jwks_server, rsa_key) -> None:
    verifier = url_verifier(jwks_server, FakeClock())
    for sub in ("a", "b", "c"):
        assert verifier.verify(rsa_key.mint(sub=sub)).subject == sub
    assert jwks_server.requests == 1


def test_unknown_key_ids_refetch_at_most_once_per_interval(jwks_server, rsa_key) -> None:
    clock = FakeClock()
    verifier = url_verifier(jwks_server, clock)
    verifier.verify(rsa_key.mint())
    rotated = SigningKey.ec("ec-2")
    clock.now += 61
    # A flood of made-up key ids: the first makes one refetch, the rest wait their turn.
    for kid in ("made-up-1", "made-up-2", "made-up-3", rotated.kid):
        assert refusal(verifier, rotated.mint(kid=kid)) == "unknown_key"
        clock.now += 1
    assert jwks_server.requests == 2
    # The provider publishes a new key: picked up by the first refetch allowed.
    jwks_server.keys = [rsa_key, rotated]
    assert refusal(verifier, rotated.mint()) == "unknown_key"
    assert jwks_server.requests == 2
    clock.now += 60
    assert verifier.verify(rotated.mint(sub="bob")).subject == "bob"
    assert verifier.verify(rsa_key.mint(sub="carol")).subject == "carol"
    assert jwks_server.requests == 3


def test_known_keys_are_kept_when_the_provider_fails(jwks_server, rsa_key) -> None:
    clock = FakeClock()
    verifier = url_verifier(jwks_server, clock, max_age_seconds=600)
    verifier.verify(rsa_key.mint())
    jwks_server.status = 500
    clock.now += 601
    assert verifier.verify(rsa_key.mint()).subject == "user-a"
    assert verifier.verify(rsa_key.mint()).subject == "user-a"
    assert jwks_server.requests == 2  # the failed refetch is not retried at once


def test_an_unreachable_provider_is_keys_unavailable(rsa_key) -> None:
    server = JwksServer([rsa_key])
    url = server.url
    server.close()
    verifier = JwtVerifier(jwks=url, issuer=ISSUER, audience=AUDIENCE, fetch_timeout_seconds=2)
    assert refusal(verifier, rsa_key.mint()) == "keys_unavailable"


@pytest.mark.parametrize(
    "location",
    [
        "http://example.com/jwks.json",
        "http://10.0.0.1/jwks.json",
        "ftp://example.com/jwks.json",
        "file:///etc/jwks.json",
        "https:///jwks.json",
        "",
    ],
)
def test_a_jwks_location_other_than_a_file_or_https_is_refused(location) -> None:
    with pytest.raises(ImproperlyConfigured):
        JwtVerifier(jwks=location, issuer=ISSUER, audience=AUDIENCE)


@pytest.mark.parametrize("algorithms", [("HS256",), ("RS256", "none"), ()])
def test_only_asymmetric_algorithms_can_be_configured(jwks_file, algorithms) -> None:
    with pytest.raises(ImproperlyConfigured):
        file_verifier(jwks_file, algorithms=algorithms)


def test_https_is_accepted_without_fetching_at_construction() -> None:
    JwtVerifier(jwks="https://keys.invalid/jwks.json", issuer=ISSUER, audience=AUDIENCE)


# --- from the event loop ------------------------------------------------------------------------


async def test_averify_reads_the_jwks_on_a_thread_and_known_keys_on_the_loop(
    jwks_server, rsa_key
) -> None:
    verifier = url_verifier(jwks_server, FakeClock())
    loads = []
    load = verifier._source.load

    def recording_load():
        loads.append(threading.current_thread().name)
        return load()

    verifier._source.load = recording_load
    decodes = []
    decode = verifier._decode

    def recording_decode(*args):
        decodes.append(threading.current_thread() is threading.main_thread())
        return decode(*args)

    verifier._decode = recording_decode
    assert (await verifier.averify(rsa_key.mint(sub="a"))).subject == "a"
    assert (await verifier.averify(rsa_key.mint(sub="b"))).subject == "b"
    with pytest.raises(InvalidToken) as refused:
        await verifier.averify(rsa_key.mint(exp=int(time.time()) - 3600))
    assert refused.value.reason == "expired"
    assert [name.startswith("jwks") for name in loads] == [True]
    # The first token waited for the fetch on the jwks thread; the others, on the loop.
    assert decodes == [False, True, True]
    assert jwks_server.requests == 1


async def test_tokens_waiting_for_a_fetch_share_it(jwks_server, rsa_key) -> None:
    verifier = url_verifier(jwks_server, FakeClock())
    tokens = [rsa_key.mint(sub=f"user-{n}") for n in range(20)]
    claims = await asyncio.gather(*(verifier.averify(token) for token in tokens))
    assert [c.subject for c in claims] == [f"user-{n}" for n in range(20)]
    assert jwks_server.requests == 1


# --- the settings -----------------------------------------------------------------------


async def test_the_module_functions_use_the_settings(settings, jwks_file, rsa_key, ec_key) -> None:
    settings.AUTH_JWT_JWKS = str(jwks_file)
    settings.AUTH_JWT_ISSUER = ISSUER
    settings.AUTH_JWT_AUDIENCE = AUDIENCE
    settings.AUTH_JWT_ALGORITHMS = ["ES256"]
    assert (await jwt_auth.averify(ec_key.mint(sub="carol"))).subject == "carol"
    with pytest.raises(InvalidToken):
        jwt_auth.verify(rsa_key.mint())
    settings.AUTH_JWT_AUDIENCE = "another"
    with pytest.raises(InvalidToken) as refused:
        jwt_auth.verify(ec_key.mint())
    assert refused.value.reason == "wrong_audience"


def start_settings(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from django.conf import settings; settings.AUTH_JWT_JWKS"],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], "DJANGO_SETTINGS_MODULE": "dashboard_ai.settings", **env},
        capture_output=True,
        text=True,
    )


JWT_MODE = {
    "AUTH_MODE": "jwt",
    "AUTH_JWT_JWKS": "https://keys.test/jwks.json",
    "AUTH_JWT_ISSUER": ISSUER,
    "AUTH_JWT_AUDIENCE": AUDIENCE,
}


def test_jwt_mode_starts_with_its_settings() -> None:
    assert start_settings(JWT_MODE).returncode == 0


@pytest.mark.parametrize("missing", ["AUTH_JWT_JWKS", "AUTH_JWT_ISSUER", "AUTH_JWT_AUDIENCE"])
def test_jwt_mode_without_a_required_setting_does_not_start(missing) -> None:
    result = start_settings({**JWT_MODE, missing: ""})
    assert result.returncode != 0
    assert f"Invalid configuration: {missing} is required when AUTH_MODE=jwt" in result.stderr


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("AUTH_JWT_ALGORITHMS", "RS256,HS256"),
        ("AUTH_JWT_ALGORITHMS", "none"),
        ("AUTH_JWT_JWKS", "http://keys.test/jwks.json"),
        ("AUTH_JWT_LEEWAY_SECONDS", "-1"),
    ],
)
def test_a_bad_jwt_setting_does_not_start(name, value) -> None:
    result = start_settings({**JWT_MODE, name: value})
    assert result.returncode != 0
    assert f"Invalid configuration: {name}" in result.stderr
