"""RS256 JWTs like Entra's: one signing key per sandbox, published as JWKS, checked by Key Vault and BC."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from sandbox.clock import SandboxClock
from sandbox.entra.federation import TOKEN_EXCHANGE_APP_ID, entra_issuer
from sandbox.errors import TokenRejectedError


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a resource server needs from a validated access token."""

    oid: str
    tid: str
    aud: str
    appid: str
    roles: tuple[str, ...]
    scp: tuple[str, ...]
    exp: float
    upn: str | None

    @property
    def delegated(self) -> bool:
        """A user token (scp) rather than an app token (roles)."""
        return bool(self.scp)


@dataclass(frozen=True, slots=True)
class AccessTokenRequest:
    """What to put into an access token."""

    audience: str
    tenant_id: str
    client_id: str
    oid: str
    lifetime_seconds: float
    roles: tuple[str, ...] = ()
    scp: tuple[str, ...] = ()
    upn: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class IdTokenRequest:
    """What to put into an id_token (MSAL checks iss, aud and nonce)."""

    issuer: str
    tenant_id: str
    client_id: str
    oid: str
    upn: str
    name: str
    nonce: str | None
    lifetime_seconds: float = 3600.0


class TokenAuthority:
    """Signs access and id tokens, publishes the JWKS, and validates bearer tokens for a resource."""

    def __init__(self, clock: SandboxClock) -> None:
        self._clock = clock
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._public = self._key.public_key()
        digest = hashlib.sha256(str(self._public.public_numbers().n).encode()).digest()
        self.key_id = base64.urlsafe_b64encode(digest[:15]).decode().rstrip("=")
        # Validation result cache: RSA verification per request would dominate BC latency under load.
        self._validated: OrderedDict[tuple[str, str], TokenClaims] = OrderedDict()

    def jwks(self) -> dict[str, Any]:
        """The JSON Web Key Set with the public signing key."""
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self._public))
        jwk.update({"kid": self.key_id, "use": "sig", "alg": "RS256", "x5t": self.key_id})
        return {"keys": [jwk]}

    def access_token(self, request: AccessTokenRequest) -> tuple[str, float]:
        """A v1-style access token (aud = resource URI, iss = sts.windows.net) and its expiry (epoch seconds)."""
        now = self._clock.now()
        exp = now + request.lifetime_seconds
        claims: dict[str, Any] = {
            "aud": request.audience,
            "iss": f"https://sts.windows.net/{request.tenant_id}/",
            "iat": int(now),
            "nbf": int(now),
            "exp": int(exp),
            "appid": request.client_id,
            "appidacr": "1",
            "idp": f"https://sts.windows.net/{request.tenant_id}/",
            "oid": request.oid,
            "sub": request.oid,
            "tid": request.tenant_id,
            "uti": uuid.uuid4().hex[:22],
            "ver": "1.0",
        }
        if request.roles:
            claims["roles"] = list(request.roles)
        if request.scp:
            claims["scp"] = " ".join(request.scp)
        if request.upn:
            claims["upn"] = request.upn
            claims["unique_name"] = request.upn
        if request.name:
            claims["name"] = request.name
        return self._sign(claims), float(int(exp))

    def exchange_token(
        self, tenant_id: str, client_id: str, principal_id: str, lifetime_seconds: float
    ) -> tuple[str, float]:
        """A managed identity's v2.0 token for api://AzureADTokenExchange, what a federated credential trusts: iss
        https://login.microsoftonline.com/{tenant}/v2.0, sub = oid = the principal id, aud = the token exchange's
        app id (sandbox/entra/federation.py), and its expiry (epoch seconds)."""
        now = self._clock.now()
        exp = now + lifetime_seconds
        claims: dict[str, Any] = {
            "aud": TOKEN_EXCHANGE_APP_ID,
            "iss": entra_issuer(tenant_id),
            "iat": int(now),
            "nbf": int(now),
            "exp": int(exp),
            "azp": client_id,
            "azpacr": "2",
            "idtyp": "app",
            "oid": principal_id,
            "sub": principal_id,
            "tid": tenant_id,
            "uti": uuid.uuid4().hex[:22],
            "ver": "2.0",
        }
        return self._sign(claims), float(int(exp))

    def read_signed(self, token: str) -> dict[str, Any]:
        """The claims of a JWT this authority signed (iss, sub, aud and exp present); raise TokenRejectedError.
        Audience, issuer and times are the caller's to judge (a federated assertion is matched against records)."""
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._public,
                algorithms=["RS256"],
                options={
                    "verify_aud": False,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "require": ["exp", "iss", "sub", "aud"],
                },
            )
        except jwt.InvalidSignatureError as exc:
            raise TokenRejectedError("the assertion's signature does not validate") from exc
        except jwt.PyJWTError as exc:
            raise TokenRejectedError(f"the assertion is malformed ({type(exc).__name__})") from exc
        return claims

    def id_token(self, request: IdTokenRequest) -> str:
        """A v2 id_token whose iss is the discovery issuer and whose aud is the client id."""
        now = self._clock.now()
        claims: dict[str, Any] = {
            "aud": request.client_id,
            "iss": request.issuer,
            "iat": int(now),
            "nbf": int(now),
            "exp": int(now + request.lifetime_seconds),
            "name": request.name,
            "oid": request.oid,
            "preferred_username": request.upn,
            "sub": hashlib.sha256(f"{request.oid}:{request.client_id}".encode()).hexdigest()[:43],
            "tid": request.tenant_id,
            "ver": "2.0",
        }
        if request.nonce is not None:
            claims["nonce"] = request.nonce
        return self._sign(claims)

    def _sign(self, claims: dict[str, Any]) -> str:
        headers = {"kid": self.key_id, "x5t": self.key_id, "typ": "JWT"}
        return jwt.encode(claims, self._key, algorithm="RS256", headers=headers)

    def validate(
        self, token: str, audience: str, tenant_id: str | Collection[str], leeway_seconds: float = 0.0
    ) -> TokenClaims:
        """Check signature, audience, tenant (one id, or any of several) and expiry (against the sandbox clock);
        raise TokenRejectedError."""
        claims = self._validated.get((token, audience))
        if claims is None:
            claims = self._verify(token, audience)
            self._validated[(token, audience)] = claims
            if len(self._validated) > 4096:
                self._validated.popitem(last=False)
        allowed = {tenant_id} if isinstance(tenant_id, str) else set(tenant_id)
        if claims.tid not in allowed:
            raise TokenRejectedError("the token was issued for another tenant")
        if claims.exp + leeway_seconds <= self._clock.now():
            raise TokenRejectedError("the token has expired")
        return claims

    def _verify(self, token: str, audience: str) -> TokenClaims:
        try:
            raw = jwt.decode(
                token,
                self._public,
                algorithms=["RS256"],
                audience=audience,
                # Expiry and issue time follow the sandbox clock (which tests move forward), not the wall clock.
                options={
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "require": ["exp", "aud", "tid", "oid"],
                },
            )
        except jwt.InvalidAudienceError as exc:
            raise TokenRejectedError("the token is meant for another audience") from exc
        except jwt.InvalidSignatureError as exc:
            raise TokenRejectedError("the token signature is invalid") from exc
        except jwt.PyJWTError as exc:
            raise TokenRejectedError(f"the token is malformed ({type(exc).__name__})") from exc
        scp = str(raw.get("scp", "")).split()
        return TokenClaims(
            oid=str(raw["oid"]),
            tid=str(raw["tid"]),
            aud=str(raw["aud"]),
            appid=str(raw.get("appid", "")),
            roles=tuple(str(role) for role in raw.get("roles", [])),
            scp=tuple(scp),
            exp=float(raw["exp"]),
            upn=raw.get("upn"),
        )

    def verify_client_assertion(
        self, assertion: str, public_key_pem: bytes, client_id: str, audience: list[str]
    ) -> None:
        """Check a client assertion JWT (private_key_jwt): signature, iss = sub = client id, aud, expiry."""
        try:
            raw = jwt.decode(
                assertion,
                public_key_pem,
                algorithms=["RS256", "PS256"],
                audience=audience,
                options={
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "require": ["exp", "aud", "iss", "sub"],
                },
            )
        except jwt.PyJWTError as exc:
            raise TokenRejectedError(f"the client assertion is invalid ({type(exc).__name__})") from exc
        if raw["iss"] != client_id or raw["sub"] != client_id:
            raise TokenRejectedError("the client assertion's iss/sub is not the client id")
        if float(raw["exp"]) <= self._clock.now():
            raise TokenRejectedError("the client assertion has expired")
