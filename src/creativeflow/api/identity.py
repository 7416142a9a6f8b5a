"""Who is calling. The API gateway authenticates users; this service takes the user from it in one
of two modes, chosen by ``IDENTITY_MODE``:

- ``trusted_gateway``: ``X-User-Id`` is believed only on a request that also carries the gateway's
  shared credential in ``X-Gateway-Secret`` (compared in constant time);
- ``jwt``: ``Authorization: Bearer <jwt>`` signed by the gateway (HMAC with ``JWT_SECRET`` or a
  public-key algorithm with ``JWT_PUBLIC_KEY``); signature, ``iss``, ``aud`` and ``exp`` are
  checked with a small leeway and the user is ``sub``. ``X-User-Id`` is ignored in this mode.

Every refusal is a 401 with ``WWW-Authenticate`` and a fixed, generic reason: a token, a secret or
a header value is never echoed or logged.
"""

from __future__ import annotations

import hmac
import logging
import re
from dataclasses import dataclass
from typing import Annotated, Any

import jwt
from fastapi import Depends, Header, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

from creativeflow.settings import Settings

log = logging.getLogger(__name__)

USER_ID_HEADER = "X-User-Id"
GATEWAY_SECRET_HEADER = "X-Gateway-Secret"
ADMIN_TOKEN_HEADER = "X-Admin-Token"
MAX_USER_ID = 128
REALM = "creativeflow"
# claims a token must carry; iat and nbf are checked when present
REQUIRED_CLAIMS = ("exp", "iss", "aud", "sub")

_gateway_secret = APIKeyHeader(
    name=GATEWAY_SECRET_HEADER,
    scheme_name="GatewaySecret",
    description="IDENTITY_MODE=trusted_gateway: the gateway's shared credential, with X-User-Id",
    auto_error=False,
)
_bearer = HTTPBearer(
    scheme_name="GatewayJWT",
    bearerFormat="JWT",
    description="IDENTITY_MODE=jwt: a token from the gateway; the user is its `sub` claim",
    auto_error=False,
)


_CANONICAL_USER_ID = re.compile(rf"[!-~]{{1,{MAX_USER_ID}}}")


def is_canonical_user_id(value: str) -> bool:
    """A user id is taken exactly as the gateway wrote it, or refused: 1 to 128 printable ASCII
    characters, no blank. Nothing is trimmed or folded, since ``"victim\\xa0"`` made into
    ``"victim"`` would act as somebody else."""
    return _CANONICAL_USER_ID.fullmatch(value) is not None


def _refuse_repeated(request: Request, names: tuple[str, ...], challenge: str) -> None:
    """Two values of one identity header are two claims of who is calling: believing either is
    a guess, so neither is."""
    for name in names:
        if len(request.headers.getlist(name)) > 1:
            log.info("identity refused: %s given more than once", name)
            raise _refused(f"{name} given more than once", challenge)


def _same_secret(offered: str | None, expected: str) -> bool:
    if not offered or not expected:
        return False
    return hmac.compare_digest(offered.encode(), expected.encode())


def _refused(detail: str, challenge: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": challenge})


# --- trusted gateway -------------------------------------------------------------------------

_GATEWAY_CHALLENGE = f'Gateway realm="{REALM}"'


def _gateway_user(settings: Settings, offered_secret: str | None, user_header: str | None) -> str:
    if not _same_secret(offered_secret, settings.gateway_shared_secret.get_secret_value()):
        raise _refused("missing or invalid gateway credential", _GATEWAY_CHALLENGE)
    if not user_header:
        raise _refused(f"missing {USER_ID_HEADER} header", _GATEWAY_CHALLENGE)
    if not is_canonical_user_id(user_header):
        log.info("gateway user refused: not a canonical user id")
        raise _refused(f"invalid {USER_ID_HEADER} header", _GATEWAY_CHALLENGE)
    return user_header


# --- JWT bearer ------------------------------------------------------------------------------

_BEARER_CHALLENGE = f'Bearer realm="{REALM}"'


def _invalid_token(description: str) -> HTTPException:
    challenge = f'{_BEARER_CHALLENGE}, error="invalid_token", error_description="{description}"'
    return _refused(description, challenge)


@dataclass(frozen=True, slots=True)
class JwtVerifier:
    """Checks one gateway token. The algorithms list is always explicit and of one family (HMAC
    or public key, see ``Settings``), so ``alg: none`` and algorithm confusion (a public key used
    as an HMAC secret) are refused by PyJWT before any signature is computed."""

    key: Any
    algorithms: tuple[str, ...]
    issuer: str
    audience: str
    leeway: int

    @classmethod
    def from_settings(cls, settings: Settings) -> JwtVerifier:
        algorithms = settings.jwt_algorithms
        if settings.jwt_uses_hmac:
            raw_key: str = settings.jwt_secret.get_secret_value()
        else:
            raw_key = settings.jwt_public_key_pem
        # parse the key once (a PEM string would be parsed again on every decode)
        key = jwt.get_algorithm_by_name(algorithms[0]).prepare_key(raw_key)
        return cls(
            key=key,
            algorithms=algorithms,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            leeway=settings.jwt_leeway_seconds,
        )

    def subject(self, token: str) -> str:
        try:
            claims = jwt.decode(
                token,
                self.key,
                algorithms=list(self.algorithms),
                issuer=self.issuer,
                audience=self.audience,
                leeway=self.leeway,
                options={
                    "require": list(REQUIRED_CLAIMS),
                    "strict_aud": False,
                    "enforce_minimum_key_length": True,
                },
            )
        except jwt.ExpiredSignatureError:
            log.info("bearer token refused: expired")
            raise _invalid_token("the bearer token has expired") from None
        except jwt.PyJWTError as refused:
            # the class name only: PyJWT's messages may quote parts of the token
            log.info("bearer token refused: %s", type(refused).__name__)
            raise _invalid_token("invalid bearer token") from None
        subject = claims.get("sub")
        if not isinstance(subject, str) or not is_canonical_user_id(subject):
            log.info("bearer token refused: unusable sub claim")
            raise _invalid_token("invalid bearer token")
        return subject


def _jwt_verifier(request: Request) -> JwtVerifier:
    """Built on first use from the app's settings and kept on the app (one per app, no global)."""
    state = request.app.state
    verifier: JwtVerifier | None = getattr(state, "jwt_verifier", None)
    if verifier is None:
        verifier = JwtVerifier.from_settings(state.settings)
        state.jwt_verifier = verifier
    return verifier


def _jwt_user(request: Request, credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None or not credentials.credentials:
        raise _refused("missing bearer token", _BEARER_CHALLENGE)
    return _jwt_verifier(request).subject(credentials.credentials)


# --- the dependencies the routes use ---------------------------------------------------------
# ``async def`` although they never await: FastAPI runs a plain ``def`` dependency in its
# thread pool, a thread hop (and a GIL hand-over) per request for a few microseconds of work.


async def current_user(
    request: Request,
    x_user_id: Annotated[
        str | None,
        Header(
            alias=USER_ID_HEADER,
            max_length=MAX_USER_ID,
            description="IDENTITY_MODE=trusted_gateway: the user the gateway authenticated",
        ),
    ] = None,
    gateway_secret: Annotated[str | None, Security(_gateway_secret)] = None,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
) -> str:
    settings: Settings = request.app.state.settings
    if settings.identity_mode == "jwt":
        _refuse_repeated(request, ("Authorization",), _BEARER_CHALLENGE)
        return _jwt_user(request, bearer)
    _refuse_repeated(request, (USER_ID_HEADER, GATEWAY_SECRET_HEADER), _GATEWAY_CHALLENGE)
    return _gateway_user(settings, gateway_secret, x_user_id)


async def require_admin(
    request: Request,
    x_admin_token: Annotated[str | None, Header(alias=ADMIN_TOKEN_HEADER)] = None,
) -> None:
    settings: Settings = request.app.state.settings
    if not _same_secret(x_admin_token, settings.admin_token.get_secret_value()):
        raise _refused("missing or invalid admin credential", f'AdminToken realm="{REALM}"')


CurrentUser = Annotated[str, Depends(current_user)]
AdminOnly = Annotated[None, Depends(require_admin)]
