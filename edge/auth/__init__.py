"""Who is calling: bearer JWTs verified against issuers' JWKS (`bearer`, `jwks`, `claims`)."""

from edge.auth.bearer import Authenticator, AuthError, Principal
from edge.auth.jose import b64url_decode

__all__ = ["AuthError", "Authenticator", "Principal", "b64url_decode"]
