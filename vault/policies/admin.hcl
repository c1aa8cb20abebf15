# Policy for the bootstrap/admin AppRole (`outpost-admin`). Used only by
# `vault.bootstrap` and operators; never given to a running service.

# Mount the engines the project uses (secret/ KV v2, transit/, approle).
path "sys/mounts" {
  capabilities = ["read"]
}
path "sys/mounts/secret" {
  capabilities = ["create", "read", "update"]
}
path "sys/mounts/transit" {
  capabilities = ["create", "read", "update"]
}
path "sys/auth" {
  capabilities = ["read"]
}
path "sys/auth/approle" {
  capabilities = ["create", "read", "update", "sudo"]
}

# Policies for Outpost components only.
path "sys/policies/acl/outpost-*" {
  capabilities = ["create", "read", "update", "delete"]
}

# AppRoles for Outpost components (roles, role ids, secret ids incl. wrapped ones).
path "auth/approle/role/outpost-*" {
  capabilities = ["create", "read", "update", "delete", "list"]
}
path "auth/approle/role" {
  capabilities = ["list"]
}

# Transit keys: create, read, rotate and configure (min versions) Outpost keys.
path "transit/keys/outpost-*" {
  capabilities = ["create", "read", "update"]
}

# Seed and rotate the Outpost KV secrets.
path "secret/data/outpost/*" {
  capabilities = ["create", "read", "update", "delete"]
}
path "secret/metadata/outpost/*" {
  capabilities = ["read", "list", "delete"]
}

# Token self-management.
path "auth/token/renew-self" {
  capabilities = ["update"]
}
path "auth/token/lookup-self" {
  capabilities = ["read"]
}
