"""Token issuer (OAuth 2.0 grants), Vault transit signing, JWKS and OpenID discovery."""
