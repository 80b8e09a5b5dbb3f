"""Offline stand-ins for Entra ID, Key Vault and Business Central, served over TLS from a local CA."""
