#!/usr/bin/env bash
# Let origin pods fetch their AppRole credentials, and edge pods their secret settings, through
# Vault's Kubernetes auth method.
# Run once per cluster by an operator whose token may enable auth methods and write policies
# (the `outpost-admin` AppRole may not: it never manages auth methods). Idempotent.
#
#   KUBERNETES_HOST=https://kubernetes.default.svc:443 \
#   KUBERNETES_CA_CERT=/path/to/ca.crt \
#   VAULT_ADDR=... VAULT_TOKEN=... deploy/vault/kubernetes-auth.sh
#
# VAULT_CLI picks the client (`bao` for OpenBao, default; `vault` works the same). When Vault runs
# inside the same cluster, KUBERNETES_CA_CERT may be left out (Vault reads its own pod's CA).
set -euo pipefail
cd "$(dirname "$0")"

: "${KUBERNETES_HOST:?set KUBERNETES_HOST to the cluster API server URL}"
VAULT_CLI=${VAULT_CLI:-bao}
NAMESPACE=${NAMESPACE:-outpost}
SERVICE_ACCOUNT=${SERVICE_ACCOUNT:-outpost-origin}
AUTH_PATH=${AUTH_PATH:-kubernetes}
ROLE=${ROLE:-outpost-origin}
EDGE_SERVICE_ACCOUNT=${EDGE_SERVICE_ACCOUNT:-outpost-edge}
EDGE_ROLE=${EDGE_ROLE:-outpost-edge}

# (No `| grep -q`: under pipefail its early exit would fail the pipeline.)
mounts=$("$VAULT_CLI" auth list -format=json)
if [[ "$mounts" != *"\"${AUTH_PATH}/\""* ]]; then
  "$VAULT_CLI" auth enable -path="$AUTH_PATH" kubernetes
fi

config=(kubernetes_host="$KUBERNETES_HOST")
if [ -n "${KUBERNETES_CA_CERT:-}" ]; then
  config+=(kubernetes_ca_cert=@"$KUBERNETES_CA_CERT")
fi
"$VAULT_CLI" write "auth/${AUTH_PATH}/config" "${config[@]}"

bind_role() {  # bind_role ROLE SERVICE_ACCOUNT POLICY
  # Short-lived agent tokens: an injected agent renders its file once, at pod start.
  "$VAULT_CLI" write "auth/${AUTH_PATH}/role/$1" \
    bound_service_account_names="$2" \
    bound_service_account_namespaces="$NAMESPACE" \
    token_policies="$3" \
    token_no_default_policy=true \
    token_ttl=5m \
    token_max_ttl=10m
}

# Origin pods: the agent delivers the origin's AppRole credentials.
"$VAULT_CLI" policy write outpost-origin-delivery origin-delivery.hcl
bind_role "$ROLE" "$SERVICE_ACCOUNT" outpost-origin-delivery

# Edge pods (deploy/k8s/edge with its `vault-settings` component): the agent reads the one KV
# secret of edge settings and renders it into a file; the edge itself never talks to Vault.
"$VAULT_CLI" policy write outpost-edge-settings edge-settings.hcl
bind_role "$EDGE_ROLE" "$EDGE_SERVICE_ACCOUNT" outpost-edge-settings
