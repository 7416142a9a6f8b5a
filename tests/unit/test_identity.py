"""Identity from the gateway: trusted-gateway headers, JWT bearer tokens (HMAC and RSA), the admin
credential, and the settings that refuse a half-configured or placeholder identity."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr, ValidationError

from creativeflow.api.identity import AdminOnly, CurrentUser
from creativeflow.api.problems import install_problem_handlers
from creativeflow.settings import Settings

GATEWAY_SECRET = "unit-gateway-secret-3f9a1c"
ADMIN_TOKEN = "unit-admin-token-77b2e0"
# long enough for HS512 too, so a refused HS512 token is refused for its algorithm alone
JWT_SECRET = "unit-jwt-secret-6d1f0b27c44e49a8b5a0c1d2e3f40516-9a8b7c6d5e4f3a2b1c0d9e8f7a6b"
ISSUER = "https://gateway.creativeflow.test"
AUDIENCE = "creativeflow-orchestrator"
LEEWAY = 30


def gateway_settings(**changes: Any) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment="test",
        gateway_shared_secret=SecretStr(GATEWAY_SECRET),
        admin_token=SecretStr(ADMIN_TOKEN),
        **changes,
    )


def jwt_settings(**changes: Any) -> Settings:
    values: dict[str, Any] = {
        "identity_mode": "jwt",
        "jwt_algorithms_value": "HS256",
        "jwt_secret": JWT_SECRET,
        "jwt_issuer": ISSUER,
        "jwt_audience": AUDIENCE,
        "jwt_leeway_seconds": LEEWAY,
    }
    return gateway_settings(**{**values, **changes})


def make_app(settings: Settings) -> FastAPI:
    app = FastAPI()
    app.state.settings = settings
    install_problem_handlers(app)

    @app.get("/me")
    def me(user_id: CurrentUser) -> dict[str, str]:
        return {"user_id": user_id}

    @app.get("/admin")
    def admin(_: AdminOnly) -> dict[str, bool]:
        return {"admin": True}

    return app


@pytest.fixture(scope="module")
def rsa_keys() -> tuple[Any, str]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public_pem


@pytest.fixture
def gateway_client() -> Iterator[TestClient]:
    with TestClient(make_app(gateway_settings())) as client:
        yield client


@pytest.fixture
def jwt_client() -> Iterator[TestClient]:
    with TestClient(make_app(jwt_settings())) as client:
        yield client


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "sub": "alice",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 300,
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def hs256(payload: dict[str, Any], secret: str = JWT_SECRET, **header: Any) -> str:
    return jwt.encode(payload, secret, algorithm="HS256", headers=header or None)


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def handmade(header: dict[str, Any], payload: dict[str, Any], key: bytes | None) -> str:
    """A token PyJWT would refuse to make: ``alg: none``, or HMAC keyed with a public key."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"
    if key is None:
        return signing_input + "."
    digest = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(digest)}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_refused(response: Any, *, scheme: str, secret: str | None = None) -> dict[str, Any]:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith(f'{scheme} realm="creativeflow"')
    if secret:
        assert secret not in response.text
        assert all(secret not in value for value in response.headers.values())
    body: dict[str, Any] = response.json()
    assert body["status"] == 401 and body["title"] == "Unauthorized"
    return body


# --- trusted gateway -------------------------------------------------------------------------


def test_gateway_mode_takes_the_user_from_x_user_id_with_the_secret(
    gateway_client: TestClient,
) -> None:
    response = gateway_client.get(
        "/me", headers={"X-Gateway-Secret": GATEWAY_SECRET, "X-User-Id": "alice@example.com"}
    )
    assert response.status_code == 200
    assert response.json() == {"user_id": "alice@example.com"}


@pytest.mark.parametrize(
    "offered",
    [
        b"victim\xa0",
        b"victim ",
        b" victim",
        b"vic tim",
        b"victim\t",
        "\uff56ictim".encode(),  # a full-width letter that NFKC folds into "v"
        b"victim\x85",
    ],
    ids=["nbsp", "trailing-space", "leading-space", "inner-space", "tab", "full-width", "nel"],
)
def test_gateway_mode_refuses_a_user_id_that_is_not_canonical_rather_than_normalising_it(
    gateway_client: TestClient, offered: bytes
) -> None:
    response = gateway_client.get(
        "/me", headers=[(b"X-Gateway-Secret", GATEWAY_SECRET.encode()), (b"X-User-Id", offered)]
    )
    body = assert_refused(response, scheme="Gateway", secret=GATEWAY_SECRET)
    assert body["detail"] == "invalid X-User-Id header"


@pytest.mark.parametrize("repeated", ["X-User-Id", "X-Gateway-Secret"])
def test_gateway_mode_refuses_an_identity_header_given_twice(
    gateway_client: TestClient, repeated: str
) -> None:
    values = {"X-Gateway-Secret": GATEWAY_SECRET, "X-User-Id": "alice"}
    headers = [(name, value) for name, value in values.items()]
    headers.append((repeated, "mallory" if repeated == "X-User-Id" else GATEWAY_SECRET))
    response = gateway_client.get("/me", headers=headers)
    body = assert_refused(response, scheme="Gateway", secret=GATEWAY_SECRET)
    assert body["detail"] == f"{repeated} given more than once"


@pytest.mark.parametrize(
    "offered",
    [None, "", "wrong", GATEWAY_SECRET[:-1], GATEWAY_SECRET + "x", GATEWAY_SECRET.upper()],
    ids=["absent", "empty", "wrong", "prefix", "longer", "other-case"],
)
def test_gateway_mode_refuses_a_missing_or_wrong_secret(
    gateway_client: TestClient, offered: str | None
) -> None:
    headers = {"X-User-Id": "alice"}
    if offered is not None:
        headers["X-Gateway-Secret"] = offered
    response = gateway_client.get("/me", headers=headers)
    body = assert_refused(response, scheme="Gateway", secret=GATEWAY_SECRET)
    assert body["detail"] == "missing or invalid gateway credential"
    if offered:
        assert offered not in response.text


@pytest.mark.parametrize("user", [None, "", "   "], ids=["absent", "empty", "blank"])
def test_gateway_mode_refuses_a_missing_user(gateway_client: TestClient, user: str | None) -> None:
    headers = {"X-Gateway-Secret": GATEWAY_SECRET}
    if user is not None:
        headers["X-User-Id"] = user
    response = gateway_client.get("/me", headers=headers)
    assert_refused(response, scheme="Gateway", secret=GATEWAY_SECRET)


def test_gateway_mode_refuses_an_overlong_user_id_as_bad_input(gateway_client: TestClient) -> None:
    response = gateway_client.get(
        "/me", headers={"X-Gateway-Secret": GATEWAY_SECRET, "X-User-Id": "u" * 129}
    )
    assert response.status_code == 422
    assert "u" * 129 not in response.text


def test_gateway_mode_does_not_accept_a_bearer_token(gateway_client: TestClient) -> None:
    response = gateway_client.get("/me", headers={**bearer(hs256(claims())), "X-User-Id": "alice"})
    assert_refused(response, scheme="Gateway")


def test_the_gateway_secret_is_compared_in_constant_time(
    gateway_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr("creativeflow.api.identity.hmac.compare_digest", spy)
    ok = gateway_client.get("/me", headers={"X-Gateway-Secret": GATEWAY_SECRET, "X-User-Id": "a"})
    wrong = gateway_client.get("/me", headers={"X-Gateway-Secret": "nope", "X-User-Id": "a"})
    assert (ok.status_code, wrong.status_code) == (200, 401)
    assert compared == [
        (GATEWAY_SECRET.encode(), GATEWAY_SECRET.encode()),
        (b"nope", GATEWAY_SECRET.encode()),
    ]


# --- admin credential ------------------------------------------------------------------------


def test_the_admin_token_is_required_and_compared_in_constant_time(
    gateway_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[bytes] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append(a)
        return real(a, b)

    monkeypatch.setattr("creativeflow.api.identity.hmac.compare_digest", spy)
    ok = gateway_client.get("/admin", headers={"X-Admin-Token": ADMIN_TOKEN})
    wrong = gateway_client.get("/admin", headers={"X-Admin-Token": ADMIN_TOKEN[:-1]})
    absent = gateway_client.get("/admin")
    gateway_only = gateway_client.get(
        "/admin", headers={"X-Gateway-Secret": GATEWAY_SECRET, "X-User-Id": "alice"}
    )
    assert ok.status_code == 200
    for refused in (wrong, absent, gateway_only):
        assert_refused(refused, scheme="AdminToken", secret=ADMIN_TOKEN)
    assert compared == [ADMIN_TOKEN.encode(), ADMIN_TOKEN[:-1].encode()]


# --- JWT bearer, HMAC ------------------------------------------------------------------------


def test_jwt_mode_takes_the_user_from_sub(jwt_client: TestClient) -> None:
    response = jwt_client.get("/me", headers=bearer(hs256(claims(sub="alice"))))
    assert response.status_code == 200
    assert response.json() == {"user_id": "alice"}


def test_jwt_mode_ignores_x_user_id(jwt_client: TestClient) -> None:
    response = jwt_client.get(
        "/me", headers={**bearer(hs256(claims(sub="alice"))), "X-User-Id": "mallory"}
    )
    assert response.json() == {"user_id": "alice"}


def test_jwt_mode_refuses_two_bearer_tokens(jwt_client: TestClient) -> None:
    alice, mallory = hs256(claims(sub="alice")), hs256(claims(sub="mallory"))
    response = jwt_client.get(
        "/me",
        headers=[("Authorization", f"Bearer {alice}"), ("Authorization", f"Bearer {mallory}")],
    )
    body = assert_refused(response, scheme="Bearer")
    assert body["detail"] == "Authorization given more than once"


def test_jwt_mode_does_not_accept_the_gateway_secret(jwt_client: TestClient) -> None:
    response = jwt_client.get(
        "/me", headers={"X-Gateway-Secret": GATEWAY_SECRET, "X-User-Id": "alice"}
    )
    body = assert_refused(response, scheme="Bearer")
    assert body["detail"] == "missing bearer token"


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Basic YWxpY2U6cHc=", "Token abc"],
    ids=["absent", "empty", "scheme-only", "scheme-blank", "basic", "other-scheme"],
)
def test_jwt_mode_refuses_a_missing_bearer_token(
    jwt_client: TestClient, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = jwt_client.get("/me", headers=headers)
    assert_refused(response, scheme="Bearer")


def _bad_tokens() -> dict[str, str]:
    now = int(time.time())
    return {
        "wrong secret": hs256(claims(), secret="another-secret-of-at-least-32-bytes!!"),
        "wrong issuer": hs256(claims(iss="https://evil.example")),
        "wrong audience": hs256(claims(aud="another-service")),
        "audience list without ours": hs256(claims(aud=["a", "b"])),
        "no exp": hs256(claims(exp=None)),
        "no iss": hs256(claims(iss=None)),
        "no aud": hs256(claims(aud=None)),
        "no sub": hs256(claims(sub=None)),
        "empty sub": hs256(claims(sub="  ")),
        "numeric sub": handmade(
            {"alg": "HS256", "typ": "JWT"}, claims(sub=42), JWT_SECRET.encode()
        ),
        "overlong sub": hs256(claims(sub="u" * 129)),
        "padded sub": hs256(claims(sub="victim\u00a0")),
        "spaced sub": hs256(claims(sub=" victim")),
        "not yet valid": hs256(claims(nbf=now + 600)),
        "issued in the future": hs256(claims(iat=now + 600)),
        "alg none": handmade({"alg": "none", "typ": "JWT"}, claims(), None),
        "alg None": handmade({"alg": "None", "typ": "JWT"}, claims(), None),
        "another HMAC size": _hs512(claims()),
        "tampered payload": _tamper(hs256(claims(sub="alice")), claims(sub="admin")),
        "garbage": "not.a.jwt",
        "two segments": "abc.def",
        "bad base64": "!!!.@@@.###",
    }


def _hs512(payload: dict[str, Any]) -> str:
    return jwt.encode(payload, JWT_SECRET, algorithm="HS512")


def _tamper(token: str, payload: dict[str, Any]) -> str:
    header, _payload, signature = token.split(".")
    return f"{header}.{b64url(json.dumps(payload).encode())}.{signature}"


@pytest.mark.parametrize("case", list(_bad_tokens()))
def test_jwt_mode_refuses_an_invalid_token_without_echoing_it(
    jwt_client: TestClient, case: str
) -> None:
    token = _bad_tokens()[case]
    response = jwt_client.get("/me", headers=bearer(token))
    body = assert_refused(response, scheme="Bearer", secret=JWT_SECRET)
    assert body["detail"] == "invalid bearer token"
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert token not in response.text
    assert all(token not in v for v in response.headers.values())


def test_the_algorithms_list_decides_which_tokens_are_checked() -> None:
    token = bearer(_hs512(claims(sub="alice")))
    with TestClient(make_app(jwt_settings(jwt_algorithms_value="HS256,HS512"))) as client:
        assert client.get("/me", headers=token).json() == {"user_id": "alice"}
    with TestClient(make_app(jwt_settings())) as client:
        assert client.get("/me", headers=token).status_code == 401


def test_jwt_mode_refuses_an_expired_token_and_says_so(jwt_client: TestClient) -> None:
    now = int(time.time())
    token = hs256(claims(iat=now - 3600, exp=now - 4 * LEEWAY))
    response = jwt_client.get("/me", headers=bearer(token))
    body = assert_refused(response, scheme="Bearer")
    assert body["detail"] == "the bearer token has expired"
    assert token not in response.text


def test_jwt_mode_allows_a_small_clock_skew(jwt_client: TestClient) -> None:
    now = int(time.time())
    just_expired = hs256(claims(iat=now - 600, exp=now - LEEWAY // 3))
    slightly_early = hs256(claims(nbf=now + LEEWAY // 3, iat=now + LEEWAY // 3))
    assert jwt_client.get("/me", headers=bearer(just_expired)).status_code == 200
    assert jwt_client.get("/me", headers=bearer(slightly_early)).status_code == 200


def test_jwt_mode_logs_no_token(jwt_client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    tokens = list(_bad_tokens().values())
    for token in tokens:
        jwt_client.get("/me", headers=bearer(token))
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "bearer token refused" in logged
    for token in tokens:
        for part in token.split("."):
            if len(part) > 8:
                assert part not in logged
    assert JWT_SECRET not in logged


# --- JWT bearer, RSA -------------------------------------------------------------------------


@pytest.fixture
def rsa_client(rsa_keys: tuple[Any, str]) -> Iterator[TestClient]:
    _private, public_pem = rsa_keys
    settings = jwt_settings(jwt_algorithms_value="RS256", jwt_secret="", jwt_public_key=public_pem)
    with TestClient(make_app(settings)) as client:
        yield client


def test_rs256_tokens_signed_by_the_gateway_are_accepted(
    rsa_client: TestClient, rsa_keys: tuple[Any, str]
) -> None:
    private, _public = rsa_keys
    token = jwt.encode(claims(sub="bob"), private, algorithm="RS256")
    response = rsa_client.get("/me", headers=bearer(token))
    assert response.status_code == 200
    assert response.json() == {"user_id": "bob"}


def test_rs256_refuses_algorithm_confusion_and_foreign_keys(
    rsa_client: TestClient, rsa_keys: tuple[Any, str]
) -> None:
    _private, public_pem = rsa_keys
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = {
        # the classic confusion: HMAC "signed" with the public key the service knows
        "hs256 keyed with the public key": handmade(
            {"alg": "HS256", "typ": "JWT"}, claims(), public_pem.encode()
        ),
        "alg none": handmade({"alg": "none", "typ": "JWT"}, claims(), None),
        "another key": jwt.encode(claims(), stranger, algorithm="RS256"),
        "another RSA size": jwt.encode(claims(), stranger, algorithm="RS512"),
    }
    for case, token in forged.items():
        response = rsa_client.get("/me", headers=bearer(token))
        assert response.status_code == 401, case
        assert token not in response.text


# --- settings --------------------------------------------------------------------------------


def production(**changes: Any) -> Settings:
    real = {
        "environment": "production",
        "gateway_shared_secret": "prod-gateway-Zx81kq0aPw",
        "admin_token": "prod-admin-Zx81kq0aPw",
        "n8n_callback_secrets": "prod-callback-Zx81kq0aPw",
        "odoo_api_key": "prod-odoo-Zx81kq0aPw",
        "s3_endpoint_url": "https://storage.example.com",
        "s3_secret_access_key": "prod-storage-Zx81kq0aPw",
    }
    return Settings(_env_file=None, **{**real, **changes})  # type: ignore[call-arg]


def test_jwt_mode_needs_issuer_audience_and_a_long_secret() -> None:
    with pytest.raises(ValidationError, match="JWT_ISSUER and JWT_AUDIENCE"):
        jwt_settings(jwt_issuer="")
    with pytest.raises(ValidationError, match="JWT_ISSUER and JWT_AUDIENCE"):
        jwt_settings(jwt_audience=" ")
    with pytest.raises(ValidationError, match="32 bytes"):
        jwt_settings(jwt_secret="")
    with pytest.raises(ValidationError, match="32 bytes"):
        jwt_settings(jwt_secret="short")


@pytest.mark.parametrize("algorithms", ["none", "HS256,none", "", "HS256,RS256", "RS256,HS256"])
def test_jwt_algorithms_are_an_explicit_list_of_one_family(algorithms: str) -> None:
    with pytest.raises(ValidationError, match="JWT_ALGORITHMS"):
        jwt_settings(jwt_algorithms_value=algorithms)


def test_a_public_key_algorithm_needs_a_real_public_key(rsa_keys: tuple[Any, str]) -> None:
    private, public_pem = rsa_keys
    with pytest.raises(ValidationError, match="JWT_PUBLIC_KEY"):
        jwt_settings(jwt_algorithms_value="RS256", jwt_public_key="")
    with pytest.raises(ValidationError, match="JWT_PUBLIC_KEY"):
        jwt_settings(jwt_algorithms_value="RS256", jwt_public_key="-----BEGIN nonsense")
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    with pytest.raises(ValidationError, match="private key"):
        jwt_settings(jwt_algorithms_value="RS256", jwt_public_key=private_pem)
    escaped = public_pem.replace("\n", "\\n")
    assert jwt_settings(
        jwt_algorithms_value="RS256", jwt_public_key=escaped
    ).jwt_public_key_pem == (public_pem.strip())


def test_a_public_key_is_not_accepted_as_an_hmac_secret(rsa_keys: tuple[Any, str]) -> None:
    _private, public_pem = rsa_keys
    with pytest.raises(ValidationError, match="JWT_SECRET"):
        jwt_settings(jwt_secret=public_pem)


def test_production_refuses_a_placeholder_jwt_secret() -> None:
    jwt_mode = {
        "identity_mode": "jwt",
        "jwt_issuer": ISSUER,
        "jwt_audience": AUDIENCE,
    }
    with pytest.raises(ValidationError, match="JWT_SECRET"):
        production(**jwt_mode, jwt_secret="dev-" + "x" * 40)
    with pytest.raises(ValidationError, match="JWT_SECRET"):
        production(**jwt_mode, jwt_secret="")
    started = production(**jwt_mode, jwt_secret=JWT_SECRET, gateway_shared_secret="")
    assert started.identity_mode == "jwt"


def test_production_in_gateway_mode_still_refuses_a_placeholder_gateway_secret() -> None:
    with pytest.raises(ValidationError, match="GATEWAY_SHARED_SECRET"):
        production(gateway_shared_secret="dev-gateway-secret")
    with pytest.raises(ValidationError, match="GATEWAY_SHARED_SECRET"):
        production(gateway_shared_secret="changeme")
    assert production().identity_mode == "trusted_gateway"


def test_production_with_rs256_starts_with_a_public_key(rsa_keys: tuple[Any, str]) -> None:
    _private, public_pem = rsa_keys
    started = production(
        identity_mode="jwt",
        jwt_algorithms_value="RS256,PS256",
        jwt_public_key=public_pem,
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
    )
    assert started.jwt_algorithms == ("RS256", "PS256")


def test_identity_secrets_do_not_show_in_the_repr() -> None:
    settings = jwt_settings()
    for shown in (repr(settings), str(settings), settings.model_dump_json()):
        assert JWT_SECRET not in shown
        assert GATEWAY_SECRET not in shown
        assert ADMIN_TOKEN not in shown


def test_asset_url_hosts_are_a_lower_cased_comma_separated_set() -> None:
    settings = gateway_settings(asset_url_hosts_value=" Assets.Example , cdn.example,,")
    assert settings.asset_url_hosts == frozenset({"assets.example", "cdn.example"})
    assert gateway_settings().asset_url_hosts == frozenset()
