# Policy `outpost-edge-settings`: what the Vault Agent injected into an edge pod may do after
# logging in with the pod's Kubernetes service account (role `outpost-edge` of the Kubernetes
# auth method, see kubernetes-auth.sh). It reads the edge's secret settings, one KV secret, and
# nothing else: no origin secret, no signing, no AppRole. The edge has no Vault client; the
# agent renders the secret into a settings file (deploy/k8s/edge/vault-settings).
# tests/deploy/test_vault_delivery.py checks both sides.

path "secret/data/outpost/edge/settings" {
  capabilities = ["read"]
}

# The role sets token_no_default_policy: grant the agent's own token upkeep explicitly.
path "auth/token/renew-self" {
  capabilities = ["update"]
}
path "auth/token/lookup-self" {
  capabilities = ["read"]
}
