"""Passwords, API keys, session cookies, CSRF and origin checks, roles."""

from __future__ import annotations

import time

import pytest
from itsdangerous import URLSafeTimedSerializer

from fraudstream.api.auth.keys import generate_key, hash_secret, parse_key, secret_matches
from fraudstream.api.auth.passwords import generate_password, hash_password, verify_password
from fraudstream.api.auth.principal import Principal
from fraudstream.api.auth.sessions import SessionCodec, csrf_ok, origin_ok
from fraudstream.api.auth.throttle import LoginThrottle


def test_password_hash_is_argon2id_salted_and_verifies() -> None:
    h1, h2 = hash_password("correct horse"), hash_password("correct horse")
    assert h1.startswith("$argon2id$") and h1 != h2 and "correct horse" not in h1
    assert verify_password(h1, "correct horse")
    assert not verify_password(h1, "correct horsE")
    assert not verify_password(None, "correct horse")  # unknown user
    assert not verify_password("not a hash", "correct horse")


def test_short_passwords_are_refused() -> None:
    with pytest.raises(ValueError, match="at least"):
        hash_password("short")
    assert len(generate_password()) >= 20


def test_api_key_round_trip_and_hash_only() -> None:
    key = generate_key()
    assert key.token.startswith("fsk_") and parse_key(key.token) == (key.key_id, key.secret)
    assert key.secret_sha256 == hash_secret(key.secret) and key.secret not in key.secret_sha256
    assert secret_matches(key.secret, key.secret_sha256)
    assert not secret_matches(key.secret + "x", key.secret_sha256)
    assert generate_key().token != key.token


BAD_KEYS = ["", "fsk_", "fsk_zz_" + "a" * 43, "xyz_0123456789abcdef_" + "a" * 43,
            "fsk_0123456789abcdef_" + "a" * 42, "fsk_0123456789abcdef_" + "a" * 43 + "!"]


@pytest.mark.parametrize("token", BAD_KEYS)
def test_malformed_keys_do_not_parse(token: str) -> None:
    assert parse_key(token) is None


def test_session_cookie_round_trip_and_tampering() -> None:
    codec = SessionCodec("s" * 40, max_age_s=60)
    cookie, data = codec.new("alice")
    assert codec.read(cookie) == data and data.user == "alice" and len(data.csrf_token) >= 32
    assert codec.new("alice")[1].csrf_token != data.csrf_token
    assert codec.read(cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB")) is None
    assert SessionCodec("other secret" * 4, 60).read(cookie) is None
    assert codec.read(None) is None and codec.read("garbage") is None
    # Correctly signed but not a session (e.g. another payload shape): refused.
    forged = URLSafeTimedSerializer("s" * 40, salt="fraudstream-session").dumps({"u": "alice"})
    assert codec.read(forged) is None


def test_session_cookie_expires() -> None:
    codec = SessionCodec("s" * 40, max_age_s=1)
    cookie, _ = codec.new("alice")
    time.sleep(2.1)
    assert codec.read(cookie) is None


def test_csrf_and_origin_checks() -> None:
    assert csrf_ok("token", "token")
    assert not csrf_ok("token", None) and not csrf_ok("token", "") and not csrf_ok("token", "tokem")
    assert origin_ok(None, "127.0.0.1:8000")
    assert origin_ok("http://127.0.0.1:8000", "127.0.0.1:8000")
    assert not origin_ok("http://evil.example", "127.0.0.1:8000")
    assert not origin_ok("null", "127.0.0.1:8000")
    assert not origin_ok("http://127.0.0.1:8001", "127.0.0.1:8000")


def test_roles_are_ordered() -> None:
    admin, analyst = Principal("a", "admin", "api_key"), Principal("b", "analyst", "session", "t")
    assert admin.has("analyst") and admin.has("admin")
    assert analyst.has("analyst") and not analyst.has("admin")


def test_login_throttle_per_name_and_client() -> None:
    now = [1000.0]
    t = LoginThrottle(max_failures=3, window_s=60, clock=lambda: now[0])
    for _ in range(3):
        assert t.retry_after("Alice", "10.0.0.1") == 0
        t.failed("Alice", "10.0.0.1")
    assert t.retry_after("alice", "10.0.0.1") == 60  # names are case-insensitive
    assert t.retry_after("alice", "10.0.0.2") == 0  # a stranger elsewhere cannot lock alice out
    assert t.retry_after("bob", "10.0.0.1") == 0
    now[0] += 61
    assert t.retry_after("alice", "10.0.0.1") == 0
    t.failed("alice", "10.0.0.1")
    t.succeeded("alice", "10.0.0.1")
    assert t.retry_after("alice", "10.0.0.1") == 0
