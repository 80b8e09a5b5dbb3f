"""`make dev`'s pure parts: settings precedence, local.settings.json warnings, the banner; and the docs that
describe the local world staying true to the code (both routes: `make dev` and by hand)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from devhost.__main__ import _arguments as devhost_arguments
from devhost.environment import read_env_file
from devhost.errors import ConfigError
from localworld.azurite import AzuriteEndpoints
from localworld.dev import (
    DEFAULT_AZURITE_PORTS,
    DEFAULT_PORT,
    DEFAULT_SANDBOX_PORT_BASE,
    DevOptions,
    _arguments,
    banner,
    check_conflicts,
    check_environment,
    cli_storage,
    in_effect,
    local_overrides,
    merge,
    own_settings,
)
from shared.settings import settings_problems

ROOT = Path(__file__).resolve().parents[3]
SANDBOX = {
    "BC_TENANT_ID": "tenant",
    "BC_CLIENT_ID": "client",
    "BC_CLIENT_SECRET": "s3cr3t-value",
    "BC_AUTHORITY_HOST": "https://127.0.0.1:7443",
    "KEY_VAULT_URL": "https://127.0.0.1:7444",
    "SANDBOX_USER": "admin@sandbox.onmicrosoft.com",
    "SANDBOX_ADMIN_URL": "https://127.0.0.1:7446/_sandbox",
}


def _write(path: Path, values: dict[str, str]) -> Path:
    path.write_text(json.dumps({"IsEncrypted": False, "Values": values}), encoding="utf-8")
    return path


def test_local_settings_override_the_sandbox_which_overrides_make_dev() -> None:
    """make dev's own < the sandbox's env file < local.settings.json; the sandbox's own keys stay out."""
    merged = merge(
        {"BC_AUTH_MODE": "delegated", "BC_TENANT_ID": "own"},
        SANDBOX,
        {"BC_AUTH_MODE": "client_credentials"},
    )
    assert merged["BC_AUTH_MODE"] == "client_credentials"
    assert merged["BC_TENANT_ID"] == "tenant"
    assert not [key for key in merged if key.startswith("SANDBOX_")]


def test_no_local_settings_file_is_fine_and_says_nothing(tmp_path: Path) -> None:
    """make dev needs no local.settings.json: no overrides, and no nudge to copy the example."""
    warnings: list[str] = []
    assert local_overrides(tmp_path / "local.settings.json", warnings.append) == {}
    assert warnings == []


def test_the_copied_example_with_other_ports_is_refused_in_one_line_naming_the_conflict(
    tmp_path: Path,
) -> None:
    """The README's other-ports recipe plus a copied example: refused before anything starts, one line."""
    values = json.loads((ROOT / "local.settings.json.example").read_text(encoding="utf-8"))["Values"]
    path = tmp_path / "local.settings.json"
    options = _arguments(
        ["--port", "7072", "--sandbox-port-base", "8443", "--azurite-ports", "20000,20001,20002"]
    )
    with pytest.raises(ConfigError) as raised:
        check_conflicts(values, path, options)
    message = str(raised.value)
    assert "\n" not in message
    assert (
        "AzureWebJobsStorage points at port 10001, but make dev runs Azurite on 20000,20001,20002" in message
    )
    for key in ("JobsStorage", "BC_REDIRECT_URI", "BC_AUTHORITY_HOST", "KEY_VAULT_URL", "BC_API_BASE_URL"):
        assert key in message
    assert "delete AzureWebJobsStorage, JobsStorage" in message


def test_the_copied_example_at_the_default_ports_has_no_conflict() -> None:
    """The example names make dev's default ports: nothing to refuse."""
    values = json.loads((ROOT / "local.settings.json.example").read_text(encoding="utf-8"))["Values"]
    check_conflicts(values, Path("local.settings.json"), DevOptions())


def test_a_local_url_on_a_port_make_dev_does_not_start_is_a_conflict_and_remote_ones_are_not() -> None:
    """A loopback URL must reach something make dev started; a real Azure host is a deliberate override."""
    options = DevOptions()
    with pytest.raises(ConfigError, match="KEY_VAULT_URL points at port 9999, but the sandbox's Key Vault"):
        check_conflicts({"KEY_VAULT_URL": "https://localhost:9999"}, Path("l.json"), options)
    with pytest.raises(ConfigError, match="BC_OTHER_URL points at port 9, where make dev starts nothing"):
        check_conflicts({"BC_OTHER_URL": "http://127.0.0.1:9/x"}, Path("l.json"), options)
    check_conflicts(
        {"KEY_VAULT_URL": "https://kv-x.vault.azure.net", "X": "not a url"}, Path("l.json"), options
    )


def test_placeholders_are_skipped_with_a_warning_naming_them(tmp_path: Path) -> None:
    """Values still like `<entra tenant id>` would break the sandbox's: skipped, and named."""
    path = _write(
        tmp_path / "local.settings.json",
        {
            "BC_TENANT_ID": "<entra tenant id>",
            "KEY_VAULT_URL": "https://<vault>.vault.azure.net",
            "X": "kept",
        },
    )
    warnings: list[str] = []
    assert local_overrides(path, warnings.append) == {"X": "kept"}
    assert len(warnings) == 1
    assert "BC_TENANT_ID, KEY_VAULT_URL" in warnings[0]


def test_banner_names_the_status_page_sign_in_link_cli_line_and_the_ca() -> None:
    """What to open: the status page (not a JSON route), the sign-in link, the CLI line, the CA to trust."""
    options = DevOptions()
    settings = merge(
        own_settings(options, AzuriteEndpoints("127.0.0.1", 10001, 10002), "the-key"), SANDBOX, {}
    )
    settings["LOCAL_CA_BUNDLE"] = "/x/sandbox-ca.pem"
    text = banner(options, settings, SANDBOX)
    assert "http://127.0.0.1:7071/api/status?code=the-key" in text
    assert "/api/auth/status" not in text
    assert "http://127.0.0.1:7071/api/auth/login?code=the-key" in text
    assert "JobsStorage=UseDevelopmentStorage=true bcjobs list" in text
    assert "http://127.0.0.1:7071/api/health" in text
    assert "function key: the-key" in text
    assert "/x/sandbox-ca.pem" in text
    assert "admin@sandbox.onmicrosoft.com" in text


def test_banner_shows_the_values_in_effect_on_other_ports() -> None:
    """Other ports: the URLs and the CLI's connection string are the ones actually running."""
    options = DevOptions(port=7072, azurite_ports=(20000, 20001, 20002))
    azurite = AzuriteEndpoints("127.0.0.1", 20001, 20002)
    text = banner(options, merge(own_settings(options, azurite, "k"), SANDBOX, {}), SANDBOX)
    assert "http://127.0.0.1:7072/api/status?code=k" in text
    assert f"JobsStorage={shlex.quote(azurite.connection_string)} bcjobs list" in text
    assert "UseDevelopmentStorage" not in text


def test_an_exported_setting_on_a_port_make_dev_does_not_run_is_refused_naming_the_environment() -> None:
    """The process environment wins in devhost: a stale `export KEY_VAULT_URL=...` is refused, saying unset it."""
    with pytest.raises(
        ConfigError, match=r"^the environment: KEY_VAULT_URL points at port 7444.*`unset KEY_VAULT_URL`"
    ):
        check_environment(
            {"KEY_VAULT_URL": "https://127.0.0.1:7444", "PATH": "/bin"}, DevOptions(sandbox_port_base=8443)
        )
    check_environment({"HTTP_PROXY": "http://127.0.0.1:3128"}, DevOptions())  # not a setting make dev sets


def test_the_values_in_effect_are_the_environments_where_it_sets_one() -> None:
    """What the banner shows is what devhost runs with: the environment's value wins, other keys add nothing."""
    assert in_effect({"A": "file", "B": "file"}, {"A": "env", "PATH": "/bin"}) == {"A": "env", "B": "file"}


def test_banner_never_prints_a_real_storage_account_key() -> None:
    """A real account's connection string from local.settings.json is pointed to, not printed."""
    real = (
        "DefaultEndpointsProtocol=https;AccountName=prod;AccountKey=c2VjcmV0;EndpointSuffix=core.windows.net"
    )
    assert "c2VjcmV0" not in cli_storage(DevOptions(), real)


def test_make_dev_options_parse() -> None:
    """Ports and folders from the command line; three Azurite ports or a usage error."""
    options = _arguments(["--port", "7072", "--sandbox-port-base", "8443", "--azurite-ports", "1,2,3"])
    assert (options.port, options.sandbox_port_base, options.azurite_ports) == (7072, 8443, (1, 2, 3))
    with pytest.raises(SystemExit):
        _arguments(["--azurite-ports", "1,2"])


# --- the docs: README's local world, local.settings.json.example, the Makefile ---------------------------------


def _local_world() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("## The local world")
    return text[start : text.index("\n## ", start + 1)]


def _commands(section: str) -> list[list[str]]:
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    lines = [line.split("#", 1)[0].strip() for block in blocks for line in block.splitlines()]
    return [shlex.split(line) for line in lines if line]


def test_readme_shows_make_dev_first_then_the_manual_route() -> None:
    """The local-world section starts with `make dev`; the by-hand route follows."""
    commands = _commands(_local_world())
    assert commands[0] == ["make", "dev"]
    assert ["make", "sandbox"] in commands[1:]


def test_every_command_of_the_local_world_exists() -> None:
    """make targets are in the Makefile, devhost's flags parse, the files named exist, Azurite's flags are the
    ones make dev uses."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for command in _commands(_local_world()):
        if command[0] == "make":
            assert re.search(rf"^{command[1]}:", makefile, flags=re.M), command
        elif command[:3] == [".venv/bin/python", "-m", "devhost"]:
            devhost_arguments(command[3:])
        elif command[0] == "cp":
            assert (ROOT / command[1]).exists()
        else:
            assert command[0] == "node_modules/.bin/azurite", command
            dev_source = (ROOT / "localworld" / "dev.py").read_text(encoding="utf-8")
            assert all(f'"{flag}"' in dev_source for flag in command[1:])


def test_the_example_settings_are_make_devs_stable_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """local.settings.json.example: the sandbox's stable URLs and CA path, the local callback, no placeholder;
    with the sandbox's env file (tenant, client, secret) it passes the cold-start check."""
    values = json.loads((ROOT / "local.settings.json.example").read_text(encoding="utf-8"))["Values"]
    base = DEFAULT_SANDBOX_PORT_BASE
    assert values["BC_AUTHORITY_HOST"] == f"https://127.0.0.1:{base}"
    assert values["KEY_VAULT_URL"] == f"https://127.0.0.1:{base + 1}"
    assert values["BC_API_BASE_URL"] == f"https://127.0.0.1:{base + 2}"
    assert values["BC_REDIRECT_URI"] == f"http://127.0.0.1:{DEFAULT_PORT}/api/auth/callback"
    assert (
        values["JobsStorage"] == "UseDevelopmentStorage=true"
    )  # Azurite's default ports, as make dev runs it
    assert DEFAULT_AZURITE_PORTS == (10000, 10001, 10002)
    assert Path(values["LOCAL_CA_BUNDLE"]) == Path(".local/sandbox/sandbox-ca.pem")
    assert DevOptions().work_dir / "sandbox" == ROOT / ".local" / "sandbox"
    assert f"--work-dir .local/sandbox --port-base {base}" in (ROOT / "Makefile").read_text(encoding="utf-8")
    assert not [key for key, value in values.items() if "<" in value]
    monkeypatch.chdir(tmp_path)  # the CA path is relative to where the app runs (the repo root)
    (tmp_path / ".local" / "sandbox").mkdir(parents=True)
    (tmp_path / ".local" / "sandbox" / "sandbox-ca.pem").write_text(
        "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n", encoding="utf-8"
    )
    sandbox_env = {k: v for k, v in SANDBOX.items() if k.startswith("BC_")}
    assert settings_problems({**sandbox_env, **values}) == []


def test_devhost_env_file_reads_key_value_lines_and_names_a_missing_file(tmp_path: Path) -> None:
    """`python -m devhost --env-file`: the sandbox's KEY=VALUE lines; a missing file says to start the sandbox."""
    env_file = tmp_path / "sandbox.env"
    env_file.write_text(
        "# comment\nBC_TENANT_ID=tenant\nKEY_VAULT_URL=https://127.0.0.1:7444\n", encoding="utf-8"
    )
    assert read_env_file(env_file) == {"BC_TENANT_ID": "tenant", "KEY_VAULT_URL": "https://127.0.0.1:7444"}
    with pytest.raises(ConfigError, match="make sandbox"):
        read_env_file(tmp_path / "absent.env")


def test_banner_says_how_to_register_a_second_connection_in_the_customer_tenant() -> None:
    """One line: the CLI's `connections put` for the sandbox's customer tenant's environment, then its consent."""
    options = DevOptions()
    environments = [
        {"tenant": "primary-t", "environment": "production"},
        {"tenant": "primary-t", "environment": "sandbox"},
        {"tenant": "customer-t", "environment": "production"},
    ]
    sandbox = {**SANDBOX, "SANDBOX_BC_ENVIRONMENTS": json.dumps(environments)}
    settings = {"BC_TENANT_ID": "primary-t", "BC_CLIENT_ID": "app-id", "DEVHOST_FUNCTION_KEY": "k"}
    lines = [
        line for line in banner(options, settings, sandbox).splitlines() if "connections put customer" in line
    ]
    assert len(lines) == 1
    assert (
        "BCJOBS_API_URL=http://127.0.0.1:7071 BCJOBS_FUNCTION_KEY=k bcjobs connections put customer"
        in lines[0]
    )
    assert "--tenant-id customer-t --environment production --client-id app-id" in lines[0]
    assert "`bcjobs connections consent customer`" in lines[0]
    assert "`bcjobs connections check customer`" in lines[0]
