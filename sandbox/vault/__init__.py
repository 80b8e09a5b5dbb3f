"""Key Vault stand-in: the secrets REST API azure-keyvault-secrets uses, behind the 401 bearer challenge."""
