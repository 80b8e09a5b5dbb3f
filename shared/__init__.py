"""Business Central integration: token lifecycle, BC client, job processing (importable without azure.functions)."""
