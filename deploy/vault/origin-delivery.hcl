# Policy `outpost-origin-delivery`: what the Vault Agent injected into an origin pod may do after
# logging in with the pod's Kubernetes service account (role `outpost-origin` of the Kubernetes
# auth method, see kubernetes-auth.sh). It delivers the origin's AppRole credentials and nothing
# else: read the role_id and mint one secret_id per pod. It cannot read any secret, sign, or
# touch any other role; the origin itself then runs with the least-privilege `outpost-origin`
# policy (vault/policies/origin.hcl). tests/deploy/test_vault_delivery.py checks both sides.

path "auth/approle/role/outpost-origin/role-id" {
  capabilities = ["read"]
}
path "auth/approle/role/outpost-origin/secret-id" {
  capabilities = ["update"]
}

# The role sets token_no_default_policy: grant the agent's own token upkeep explicitly.
path "auth/token/renew-self" {
  capabilities = ["update"]
}
path "auth/token/lookup-self" {
  capabilities = ["read"]
}
