"""Offline stand-ins for Entra ID, Key Vault and Business Central, served over TLS from a local CA."""

from sandbox.config import BcEnvironmentConfig, SandboxConfig
from sandbox.sandbox import Sandbox

__all__ = ["BcEnvironmentConfig", "Sandbox", "SandboxConfig"]
