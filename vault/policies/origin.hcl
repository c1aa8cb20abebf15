# Policy for the origin service (AppRole `outpost-origin`). Least privilege:
# read its own KV secrets, keep refresh-token family state, sign with (and read
# the public half of) its transit key. Nothing else: no list of other paths, no
# transit key management, no sys/ access.

# Configuration secrets loaded into memory at startup (HMAC pepper, client HMACs, ...).
path "secret/data/outpost/origin/*" {
  capabilities = ["read"]
}
path "secret/metadata/outpost/origin/*" {
  capabilities = ["list"]
}
path "secret/metadata/outpost/origin" {
  capabilities = ["list"]
}

# Refresh-token family state shared by all origin replicas (check-and-set writes).
path "secret/data/outpost/origin-state/refresh/*" {
  capabilities = ["create", "read", "update"]
}
# Purge: list the families shard by shard and delete the expired and revoked ones (all versions).
path "secret/metadata/outpost/origin-state/refresh" {
  capabilities = ["list"]
}
path "secret/metadata/outpost/origin-state/refresh/*" {
  capabilities = ["list", "delete"]
}

# JWT signing: private keys never leave Vault.
path "transit/sign/outpost-jwt" {
  capabilities = ["update"]
}
# Public keys for the JWKS document.
path "transit/keys/outpost-jwt" {
  capabilities = ["read"]
}

# The local attestation issuer (development stand-in for App Check): sign, read its public key.
path "transit/sign/outpost-attest" {
  capabilities = ["update"]
}
path "transit/keys/outpost-attest" {
  capabilities = ["read"]
}

# The role sets token_no_default_policy, so grant the two self-service token paths explicitly.
path "auth/token/renew-self" {
  capabilities = ["update"]
}
path "auth/token/lookup-self" {
  capabilities = ["read"]
}
