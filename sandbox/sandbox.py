"""The Sandbox: builds the three services and the admin app from a SandboxConfig and runs them over TLS."""

from __future__ import annotations

import json
import random
import secrets
import shutil
import ssl
import tempfile
from pathlib import Path
from types import TracebackType

from sandbox.admin import admin_app
from sandbox.bc.app import BcEndpoints
from sandbox.bc.control import BcControl
from sandbox.bc.webhooks import WebhookSender
from sandbox.clock import SandboxClock
from sandbox.config import SandboxConfig
from sandbox.entra.app import EntraEndpoints
from sandbox.entra.control import EntraControl
from sandbox.entra.directory import build_directory
from sandbox.errors import SandboxStartError
from sandbox.identity import PATH as IDENTITY_PATH
from sandbox.identity import IdentityControl, IdentityEndpoint
from sandbox.server import Listener, ServerThread, bind
from sandbox.tls import TlsFiles, write_tls_files
from sandbox.tokens import TokenAuthority
from sandbox.vault.app import VaultEndpoints
from sandbox.vault.control import VaultControl


class Sandbox:
    """Entra ID, Key Vault and Business Central stand-ins on 127.0.0.1 over TLS; use as a context manager."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self.clock = SandboxClock()
        self._own_work_dir = self.config.work_dir is None
        self.work_dir = (
            Path(tempfile.mkdtemp(prefix="bc-sandbox-"))
            if self.config.work_dir is None
            else self.config.work_dir
        )
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.tls: TlsFiles = write_tls_files(self.work_dir)
        self.authority = TokenAuthority(self.clock)
        self.directory = build_directory(
            self.config, random.Random(self.config.seed), self.tls.client_public_key_pem
        )
        self.entra = EntraControl(self.config, self.directory, self.clock)
        self.vault = VaultControl(self.config, self.clock)
        # Every app registration and managed identity has a Microsoft Entra Application card in every environment
        # until a test unregisters one (sandbox.bc.unregister_application).
        callers = [app.client_id for app in self.directory.apps]
        callers += [identity.client_id for identity in self.directory.identities]
        self.bc = BcControl(self.config, self.clock, self.tenant_ids, callers)
        # BC's sender trusts public CAs; the sandbox CA is added so an https receiver served with the sandbox's
        # certificate works too. A local receiver on plain http://127.0.0.1 (as the devhost serves) needs neither.
        webhook_tls = ssl.create_default_context()
        webhook_tls.load_verify_locations(cafile=str(self.tls.ca_bundle))
        self.bc.webhooks.tls_context = webhook_tls
        self.identity = IdentityControl(secrets.token_hex(16))
        host = self.config.host
        self._sockets = {
            "entra": bind(host, self.config.entra_port),
            "vault": bind(host, self.config.vault_port),
            "bc": bind(host, self.config.bc_port),
            "admin": bind(host, self.config.admin_port),
            "identity": bind(host, self.config.identity_port),
        }
        self.entra_url = self._url("entra")
        self.vault_url = self._url("vault")
        self.bc_url = self._url("bc")
        self.admin_url = f"{self._url('admin')}/_sandbox"
        identity_port = self._sockets["identity"].getsockname()[1]
        self.identity_url = f"http://{host}:{identity_port}{IDENTITY_PATH}"
        self.env: dict[str, str] = self._environment()
        self._server: ServerThread | None = None
        self._sender: WebhookSender | None = None

    def _url(self, name: str) -> str:
        return f"https://{self.config.host}:{self._sockets[name].getsockname()[1]}"

    @property
    def ca_bundle(self) -> Path:
        """The CA certificate (PEM) that every client must trust."""
        return self.tls.ca_bundle

    @property
    def tenant_id(self) -> str:
        """The sandbox tenant."""
        return self.directory.tenant_id

    @property
    def tenant_ids(self) -> list[str]:
        """Every tenant id, the primary one first (SANDBOX_TENANTS)."""
        return [tenant.tenant_id for tenant in self.directory.tenants]

    def bc_environments(self) -> list[dict[str, str]]:
        """Every BC environment as SANDBOX_BC_ENVIRONMENTS lists it (the primary one first)."""
        envs = sorted(self.bc.environments.values(), key=lambda env: not env.primary)
        return [
            {
                "tenant": env.tenant_id,
                "environment": env.name,
                "companyId": env.company_id,
                "companyName": env.company_name,
            }
            for env in envs
        ]

    def _environment(self) -> dict[str, str]:
        app = self.directory.primary
        # A secretless primary app (config.secretless_apps) has no BC_CLIENT_SECRET to write.
        secret = {} if app.client_secret is None else {"BC_CLIENT_SECRET": app.client_secret}
        return {
            "LOCAL_CA_BUNDLE": str(self.tls.ca_bundle),
            "BC_AUTHORITY_HOST": self.entra_url,
            "BC_TENANT_ID": self.directory.tenant_id,
            "BC_CLIENT_ID": app.client_id,
            **secret,
            "KEY_VAULT_URL": self.vault_url,
            "KEY_VAULT_VERIFY_CHALLENGE_RESOURCE": "false",
            "BC_API_BASE_URL": self.bc_url,
            "BC_ENVIRONMENT": self.config.bc_environment,
            "BC_COMPANY_NAME": self.config.bc_company_name,
            "BC_COMPANY_ID": self.bc.company_id,
            "SANDBOX_USER": self.directory.user.upn,
            "SANDBOX_ADMIN_URL": self.admin_url,
            "SANDBOX_CLIENT_CERT": str(self.tls.client_cert),
            "SANDBOX_CLIENT_CERT_THUMBPRINT": self.tls.client_cert_thumbprint,
            # For a process that should look like an App Service site (IDENTITY_ENDPOINT/IDENTITY_HEADER under
            # these names, so nothing picks the managed identity up by accident) and for an HTTPS Azurite.
            "SANDBOX_IDENTITY_ENDPOINT": self.identity_url,
            "SANDBOX_IDENTITY_HEADER": self.identity.header,
            "SANDBOX_MANAGED_IDENTITY_CLIENT_ID": self.managed_identity_client_id,
            "SANDBOX_SERVER_CERT": str(self.tls.server_cert),
            "SANDBOX_SERVER_KEY": str(self.tls.server_key),
            "SANDBOX_TENANTS": json.dumps(self.tenant_ids),
            "SANDBOX_BC_ENVIRONMENTS": json.dumps(self.bc_environments()),
        }

    @property
    def managed_identity_client_id(self) -> str:
        """The client id of the site's user-assigned identity (what JobsStorage__clientId names)."""
        return self.directory.identities[0].client_id

    @property
    def managed_identity_env(self) -> dict[str, str]:
        """What App Service puts in the environment of a site with a managed identity (not in the env file: a
        process that has them uses managed identity wherever DefaultAzureCredential is asked)."""
        return {"IDENTITY_ENDPOINT": self.identity_url, "IDENTITY_HEADER": self.identity.header}

    def extra_clients(self) -> list[tuple[str, str]]:
        """(client_id, secret) of the extra app registrations (config.extra_clients), each a separate BC identity;
        a secretless one (config.secretless_apps) is left out."""
        return [
            (app.client_id, app.client_secret)
            for app in self.directory.apps[1:]
            if app.client_secret is not None
        ]

    # --- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> Sandbox:
        """Serve all services; returns once every port accepts TLS connections."""
        if self._server is not None:
            raise SandboxStartError("the sandbox is already running")
        entra = EntraEndpoints(self.config, self.entra, self.authority, self.clock).app()
        vault = VaultEndpoints(self.config, self.vault, self.authority, self.tenant_id, self.entra_url).app()
        bc = BcEndpoints(
            self.config, self.bc, self.authority, self.tenant_id, self.entra_url, self.tenant_ids
        ).app()
        identity = IdentityEndpoint(
            self.config, self.identity, self.authority, self.directory, self.clock
        ).app()
        listeners = [
            Listener("entra", entra, self._sockets["entra"]),
            Listener("vault", vault, self._sockets["vault"]),
            Listener("bc", bc, self._sockets["bc"]),
            Listener("admin", admin_app(self), self._sockets["admin"]),
            Listener("identity", identity, self._sockets["identity"], tls=False),
        ]
        self._server = ServerThread(listeners, self.tls)
        self._server.start()
        self._sender = WebhookSender(self.bc.webhooks)
        self._sender.start()
        return self

    def stop(self) -> None:
        """Stop serving and remove the temporary work folder (if the sandbox made it)."""
        if self._sender is not None:
            self._sender.stop()
            self._sender = None
        if self._server is not None:
            self._server.stop()
            self._server = None
        else:
            for sock in self._sockets.values():
                sock.close()
        if self._own_work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def reset(self) -> None:
        """Restore every knob and counter, reseed BC's data, clear Key Vault, return the clock to real time."""
        self.clock.reset()
        self.entra.reset()
        self.vault.reset()
        self.bc.reset()
        self.identity.reset()

    def write_env_file(self, path: Path) -> None:
        """Write the env keys as KEY=VALUE lines (atomically, so a reader never sees half a file)."""
        text = "".join(f"{key}={value}\n" for key, value in self.env.items())
        partial = path.with_name(path.name + ".partial")
        partial.write_text(text, encoding="utf-8")
        partial.replace(path)

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Sandbox(entra={self.entra_url}, vault={self.vault_url}, bc={self.bc_url})"
