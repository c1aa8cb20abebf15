"""Vault access for the origin: AppRole client, token renewal, in-memory secrets snapshot."""
