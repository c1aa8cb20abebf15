"""Vault/OpenBao tooling: HCL policies, the local persistent server and the idempotent bootstrap."""
