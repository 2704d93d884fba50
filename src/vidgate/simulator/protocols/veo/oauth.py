"""The OAuth 2.0 token exchange ``google-auth`` performs for a service account, and the
bearer check of the Vertex routes.

A service-account JSON whose ``token_uri`` is ``{simulator}/token`` makes
``google.oauth2.service_account.Credentials.refresh`` post its signed JWT here
(``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer``). The simulator checks the
assertion's form and claims as Google's endpoint does (RS256, issuer, audience, a
lifetime of at most an hour, a scope) but not its signature: it does not know the
account's public key. The access token it answers with is the only bearer the Vertex
routes accept, until it expires.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

import jwt
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from vidgate.simulator.deps import StateDep, count_request
from vidgate.simulator.protocols.veo import google
from vidgate.simulator.protocols.veo.wire import veo_state

TOKEN_PATH = "/token"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_SECONDS = 3599  # what Google's endpoint answers
MAX_ASSERTION_SECONDS = 3600
CLOCK_SKEW_SECONDS = 300

MISSING_CREDENTIALS = (
    "Request is missing required authentication credential. Expected OAuth 2 access token, "
    "login cookie or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project."
)
INVALID_CREDENTIALS = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project."
)

router = APIRouter(dependencies=[Depends(count_request)])


class OAuthError(Exception):
    """An answer of the token endpoint: ``{"error", "error_description"}`` and a 400."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


def _oauth_response(exc: OAuthError) -> Response:
    return JSONResponse({"error": exc.error, "error_description": exc.description}, 400)


@router.post(TOKEN_PATH)
async def token(request: Request, state: StateDep) -> Response:
    form = await request.form()
    grant_type = form.get("grant_type")
    assertion = form.get("assertion")
    try:
        if grant_type != JWT_BEARER:
            raise OAuthError("unsupported_grant_type", f"Invalid grant_type: {grant_type}")
        if not isinstance(assertion, str) or not assertion:
            raise OAuthError("invalid_request", "Missing required parameter: assertion")
        _check_assertion(assertion, now=state.clock(), own_uri=str(request.url))
    except OAuthError as exc:
        return _oauth_response(exc)
    issued = f"ya29.sim-{secrets.token_urlsafe(32)}"
    veo_state(state).tokens[issued] = state.clock() + TOKEN_SECONDS
    return JSONResponse(
        {"access_token": issued, "expires_in": TOKEN_SECONDS, "token_type": "Bearer"}
    )


def _check_assertion(assertion: str, *, now: float, own_uri: str) -> None:
    try:
        header = jwt.get_unverified_header(assertion)
        claims: dict[str, Any] = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise OAuthError("invalid_grant", "Invalid JWT Signature.") from None
    if header.get("alg") != "RS256":
        raise OAuthError("invalid_grant", "Invalid JWT Signature.")
    if not isinstance(claims.get("iss"), str) or "@" not in claims["iss"]:
        raise OAuthError("invalid_grant", "Invalid JWT: missing or malformed issuer (iss).")
    if claims.get("aud") not in (GOOGLE_TOKEN_URI, own_uri):
        raise OAuthError("invalid_grant", "Invalid JWT: Failed audience check.")
    issued_at, expires = claims.get("iat"), claims.get("exp")
    if (
        not isinstance(issued_at, int)
        or not isinstance(expires, int)
        or expires - issued_at > MAX_ASSERTION_SECONDS
        or not issued_at - CLOCK_SKEW_SECONDS <= now <= expires
    ):
        raise OAuthError(
            "invalid_grant",
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable "
            "timeframe. Check your iat and exp values in the JWT claim.",
        )
    if not isinstance(claims.get("scope"), str) or not claims["scope"].strip():
        raise OAuthError("invalid_scope", "Invalid OAuth scope or ID token audience provided.")


def require_bearer(request: Request, state: StateDep) -> None:
    """The Vertex routes' credential check: a token this simulator issued, unexpired."""
    scheme, _, given = (request.headers.get("authorization") or "").partition(" ")
    given = given.strip()
    method = "google.cloud.aiplatform.v1.PredictionService.PredictLongRunning"
    if scheme.lower() != "bearer" or not given:
        raise google.GoogleError(
            401,
            MISSING_CREDENTIALS,
            details=[
                google.error_info("CREDENTIALS_MISSING", google.VERTEX_SERVICE, method=method)
            ],
        )
    expires = veo_state(state).tokens.get(given)
    if expires is None or state.clock() >= expires:
        reason = "ACCESS_TOKEN_EXPIRED" if expires is not None else "ACCESS_TOKEN_TYPE_UNSUPPORTED"
        raise google.GoogleError(
            401,
            INVALID_CREDENTIALS,
            details=[google.error_info(reason, google.VERTEX_SERVICE, method=method)],
        )


BearerDep = Annotated[None, Depends(require_bearer)]
