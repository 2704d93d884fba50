"""JSON Web Tokens (auth mode ``jwt``): the usual way a product's own login hands its
users to vidgate.

Exactly one key source: an HS256 secret, an RS256 public key (PEM), or a JWKS file or URL
whose keys are chosen by the token's ``kid``. A JWKS URL (the identity provider's endpoint)
is fetched by PyJWT's ``PyJWKClient``: cached for five minutes, fetched again early when a
token names an unknown ``kid`` (key rotation, at most every 30 s); while it cannot be
reached and nothing is cached, requests get 503 AUTH_UNAVAILABLE.

Every decode names the algorithms it accepts (the key's own, never ``none``), requires
``exp`` and ``sub``, and checks issuer and audience.
PyJWT's exceptions stop here and become ``Unauthenticated`` with one of three codes:

- ``TOKEN_EXPIRED``: ``exp`` has passed (beyond the leeway);
- ``TOKEN_INVALID``: not a JWT, a bad signature, a refused algorithm, an unknown ``kid``;
- ``TOKEN_CLAIMS_INVALID``: signed by us but not for us: issuer, audience, ``sub``,
  ``exp`` missing, not valid yet.

Messages never repeat the token.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from vidgate.auth.base import Principal
from vidgate.auth.keys import MAX_USER_ID
from vidgate.config import ConfigError, Settings
from vidgate.domain.errors import AuthUnavailable, Unauthenticated

logger = logging.getLogger(__name__)

MIN_HMAC_BYTES = 32  # RFC 7518 3.2: an HS256 key is at least as long as the hash
MIN_RSA_BITS = 2048
MAX_TOKEN_CHARS = 16 * 1024  # refuse before parsing anything absurd


@dataclass(frozen=True)
class _Key:
    """A verification key and the one algorithm it may be used with."""

    key: Any
    algorithm: str


class JwtAuthenticator:
    """Verifies tokens against a fixed key (HS256 / RS256) or a key set (by ``kid``)."""

    def __init__(
        self,
        *,
        keys: dict[str | None, _Key],
        key_set: jwt.PyJWKClient | None = None,
        issuer: str,
        audience: str,
        leeway: float = 0.0,
        admin_role: str = "vidgate:admin",
        admin_users: Iterable[str] = (),
    ) -> None:
        # ``None`` maps the key used by tokens without a ``kid`` (a single static key).
        self._keys = keys
        self._key_set = key_set  # a JWKS endpoint, when keys is empty
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway
        self._admin_role = admin_role
        self._admins = frozenset(admin_users)

    @classmethod
    def from_settings(cls, settings: Settings) -> JwtAuthenticator:
        """Build from ``VIDGATE_JWT_*``; ``ConfigError`` says what is missing or unusable."""
        if not settings.jwt_issuer or not settings.jwt_audience:
            raise ConfigError(
                "auth mode jwt needs VIDGATE_JWT_ISSUER and VIDGATE_JWT_AUDIENCE: "
                "tokens are only accepted from one issuer, for one audience"
            )
        sources = [
            name
            for name, value in (
                ("VIDGATE_JWT_SECRET", settings.jwt_secret),
                ("VIDGATE_JWT_SECRET_FILE", settings.jwt_secret_file),
                ("VIDGATE_JWT_PUBLIC_KEY_FILE", settings.jwt_public_key_file),
                ("VIDGATE_JWT_JWKS_FILE", settings.jwt_jwks_file),
                ("VIDGATE_JWT_JWKS_URL", settings.jwt_jwks_url),
            )
            if value is not None
        ]
        if len(sources) != 1:
            found = ", ".join(sources) if sources else "none"
            raise ConfigError(
                "auth mode jwt needs exactly one key source: VIDGATE_JWT_SECRET, "
                "VIDGATE_JWT_SECRET_FILE, VIDGATE_JWT_PUBLIC_KEY_FILE, VIDGATE_JWT_JWKS_FILE "
                f"or VIDGATE_JWT_JWKS_URL (set: {found})"
            )
        key_set = None
        keys: dict[str | None, _Key] = {}
        if settings.jwt_jwks_url is not None:
            key_set = jwks_client(settings.jwt_jwks_url)
        elif settings.jwt_public_key_file is not None:
            keys = {None: _rsa_public_key(settings.jwt_public_key_file)}
        elif settings.jwt_jwks_file is not None:
            keys = _key_set(settings.jwt_jwks_file)
        else:
            keys = {None: _hmac_key(settings.jwt_key_material() or "")}
        return cls(
            keys=keys,
            key_set=key_set,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            leeway=settings.jwt_leeway_seconds,
            admin_role=settings.jwt_admin_role,
            admin_users=settings.admin_users,
        )

    async def authenticate(self, token: str | None) -> Principal:
        if not token:
            raise Unauthenticated(
                "A token is required: send 'Authorization: Bearer <JWT>'.", code="AUTH_REQUIRED"
            )
        if len(token) > MAX_TOKEN_CHARS:
            raise _invalid("The token is too long.")
        key = self._key_for(token) if self._key_set is None else await self._fetched_key(token)
        claims = self._decode(token, key)
        subject = claims["sub"]
        if not subject or len(subject) > MAX_USER_ID or not subject.isprintable():
            raise Unauthenticated(
                f"The token's sub claim must be 1 to {MAX_USER_ID} printable characters.",
                code="TOKEN_CLAIMS_INVALID",
            )
        return Principal(user_id=subject, admin=self._is_admin(subject, claims))

    async def close(self) -> None:
        """Nothing to release: keys are read once, at start."""

    async def _fetched_key(self, token: str) -> _Key:
        """The key the token's ``kid`` names in the identity provider's key set."""
        assert self._key_set is not None
        try:
            jwk = await asyncio.to_thread(self._key_set.get_signing_key_from_jwt, token)
        except jwt.PyJWKClientConnectionError as exc:
            logger.warning("the JWKS endpoint cannot be reached: %s", exc)
            raise AuthUnavailable(
                "Tokens cannot be checked right now (the identity provider's keys are "
                "unreachable); try again shortly."
            ) from None
        except (jwt.PyJWKClientError, jwt.DecodeError, ValueError):
            raise _invalid(
                "The token is signed with a key (kid) the identity provider does not list."
            ) from None
        return _Key(jwk, jwk.algorithm_name)

    def _decode(self, token: str, key: _Key) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[key.algorithm],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "sub"], "enforce_minimum_key_length": True},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("The token has expired.", code="TOKEN_EXPIRED") from None
        except jwt.InvalidAlgorithmError:
            raise _invalid(f"The token must be signed with {key.algorithm}.") from None
        except (jwt.InvalidSignatureError, jwt.InvalidKeyError):
            raise _invalid("The token's signature is not valid.") from None
        except jwt.DecodeError:
            raise _invalid("The token is not a well-formed JWT.") from None
        except jwt.InvalidAudienceError:
            raise _claims("The token is not meant for this audience (aud).") from None
        except jwt.InvalidIssuerError:
            raise _claims("The token comes from an issuer this server does not trust.") from None
        except jwt.MissingRequiredClaimError as exc:
            raise _claims(f"The token has no {exc.claim} claim.") from None
        except jwt.ImmatureSignatureError:
            raise _claims("The token is not valid yet (nbf or iat).") from None
        except jwt.InvalidTokenError:
            # iat, sub or jti of the wrong type, and anything PyJWT adds later.
            raise _claims("The token's claims are not valid.") from None
        return claims

    def _key_for(self, token: str) -> _Key:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except (jwt.DecodeError, ValueError):  # UnicodeError is a ValueError
            raise _invalid("The token is not a well-formed JWT.") from None
        if None in self._keys:  # a single static key: any kid is ignored
            return self._keys[None]
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        if not isinstance(kid, str) or kid not in self._keys:
            raise _invalid("The token is signed with a key (kid) this server does not know.")
        return self._keys[kid]

    def _is_admin(self, subject: str, claims: dict[str, Any]) -> bool:
        roles = claims.get("roles")
        scope = claims.get("scope")
        return (
            subject in self._admins
            or (isinstance(roles, list) and self._admin_role in roles)
            or (isinstance(scope, str) and self._admin_role in scope.split())
        )


def jwks_client(url: str, *, cooldown_seconds: float = 30.0) -> jwt.PyJWKClient:
    """PyJWT's client for a JWKS endpoint; ``ConfigError`` for a URL it cannot use."""
    if not url.startswith(("https://", "http://")):
        raise ConfigError("VIDGATE_JWT_JWKS_URL must be an http(s) URL")
    return jwt.PyJWKClient(
        url, lifespan=300, timeout=5, cooldown_duration=cooldown_seconds, cache_jwk_set=True
    )


def _invalid(message: str) -> Unauthenticated:
    return Unauthenticated(message, code="TOKEN_INVALID")


def _claims(message: str) -> Unauthenticated:
    return Unauthenticated(message, code="TOKEN_CLAIMS_INVALID")


def _hmac_key(secret: str) -> _Key:
    if len(secret.encode()) < MIN_HMAC_BYTES:
        raise ConfigError(
            f"the HS256 secret (VIDGATE_JWT_SECRET or VIDGATE_JWT_SECRET_FILE) must be at "
            f"least {MIN_HMAC_BYTES} bytes"
        )
    return _Key(secret, "HS256")


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} {path}: {exc.strerror}") from exc


def _rsa_public_key(path: Path) -> _Key:
    try:
        key = serialization.load_pem_public_key(_read(path, "JWT public key file"))
    except ValueError as exc:
        raise ConfigError(f"{path} is not a PEM public key") from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise ConfigError(f"{path} is not an RSA public key (RS256 needs one)")
    if key.key_size < MIN_RSA_BITS:
        raise ConfigError(f"{path}: an RSA key needs at least {MIN_RSA_BITS} bits")
    return _Key(key, "RS256")


def _key_set(path: Path) -> dict[str | None, _Key]:
    try:
        keys = jwt.PyJWKSet.from_json(_read(path, "JWKS file").decode("utf-8"))
    except (ValueError, jwt.PyJWTError) as exc:
        raise ConfigError(f"{path} is not a usable JSON Web Key Set: {exc}") from exc
    found: dict[str | None, _Key] = {}
    for jwk in keys:
        if jwk.public_key_use not in (None, "sig"):
            continue  # an encryption key never verifies a signature
        weak = jwk.Algorithm.check_key_length(jwk.key)
        if weak:
            raise ConfigError(f"{path}: key {jwk.key_id!r}: {weak}")
        if jwk.key_id is None and len(keys.keys) > 1:
            raise ConfigError(f"{path}: with several keys, each needs a kid")
        found[jwk.key_id or ""] = _Key(jwk, jwk.algorithm_name)
    if not found:
        raise ConfigError(f"{path} has no signing key")
    return found
