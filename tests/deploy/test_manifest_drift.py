"""The manifests agree with the code: probe paths are real routes, ports line up, env var names
are real settings fields, selectors match, and the edge's pool value points at the Service."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic_settings import BaseSettings
from starlette.testclient import TestClient

from edge.config import load_config
from origin.app import create_app
from origin.identity.settings import IdentitySettings
from origin.secrets.settings import VaultSettings
from origin.settings import OriginSettings
from tests.deploy.conftest import ROOT, find

SETTINGS: list[type[BaseSettings]] = [OriginSettings, VaultSettings, IdentitySettings]
VAULT_ANNOTATION = "vault.hashicorp.com/"


def settings_env_names() -> set[str]:
    names = set()
    for cls in SETTINGS:
        prefix = cls.model_config["env_prefix"]
        names.update(f"{prefix}{field}".upper() for field in cls.model_fields)
    return names


def origin_routes(tmp_path: Path) -> set[str]:
    app = create_app(OriginSettings(models_dir=tmp_path, watch=False))
    return set(app.openapi()["paths"])


def pod_labels(deployment: dict[str, Any]) -> dict[str, str]:
    return deployment["spec"]["template"]["metadata"]["labels"]


def annotations(deployment: dict[str, Any]) -> dict[str, str]:
    return deployment["spec"]["template"]["metadata"]["annotations"]


def test_probes_hit_the_origins_real_health_routes(
    origin_container: dict[str, Any], tmp_path: Path
) -> None:
    routes = origin_routes(tmp_path)
    probes = {k: origin_container[k]["httpGet"]["path"] for k in origin_container if "Probe" in k}
    assert probes == {
        "startupProbe": "/v2/health/live",
        "livenessProbe": "/v2/health/live",
        "readinessProbe": "/v2/health/ready",
    }
    assert set(probes.values()) <= routes
    assert "/metrics" in routes  # scraped via the prometheus.io annotations
    # And they answer as probes expect on a real app (no models yet: live but not ready).
    with TestClient(create_app(OriginSettings(models_dir=tmp_path, watch=False))) as client:
        assert client.get(probes["livenessProbe"]).status_code == 200
        assert client.get(probes["readinessProbe"]).status_code == 503
        assert client.get("/v2/health/nope").status_code == 404


def test_probes_and_service_use_the_port_the_origin_listens_on(
    resources: list[dict[str, Any]], deployment: dict[str, Any], origin_container: dict[str, Any]
) -> None:
    config = find("ConfigMap", resources)["data"]
    listen = OriginSettings(port=int(config["OUTPOST_ORIGIN_PORT"])).port
    grpc = OriginSettings(grpc_port=int(config["OUTPOST_ORIGIN_GRPC_PORT"])).grpc_port
    admin = OriginSettings(admin_port=int(config["OUTPOST_ORIGIN_ADMIN_PORT"])).admin_port
    ports = {p["name"]: p["containerPort"] for p in origin_container["ports"]}
    assert ports == {"http": listen, "grpc": grpc, "admin": admin}
    for key in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert ports[origin_container[key]["httpGet"]["port"]] == listen
    # Metrics are scraped on the internal listener (no caller proof needed there), which the
    # Service does not expose.
    assert annotations(deployment)["prometheus.io/port"] == str(admin)
    service = find("Service", resources)
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http", "grpc"]
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {
        "http": listen,
        "grpc": grpc,
    }
    assert OriginSettings(host=config["OUTPOST_ORIGIN_HOST"]).host == "0.0.0.0"


def test_every_env_var_in_the_manifests_is_a_real_settings_field(
    resources: list[dict[str, Any]], origin_container: dict[str, Any]
) -> None:
    known = settings_env_names()
    used = set(find("ConfigMap", resources)["data"]) | {e["name"] for e in origin_container["env"]}
    assert used, "no settings in the manifests"
    assert used - known == set()


def test_configmap_values_parse_as_settings(resources: list[dict[str, Any]]) -> None:
    """Each class reads its own prefix from the same mapping, as in the pod's environment."""
    data = find("ConfigMap", resources)["data"]
    for cls in SETTINGS:
        prefix = cls.model_config["env_prefix"]
        ours = {k[len(prefix) :].lower(): v for k, v in data.items() if k.startswith(prefix)}
        cls.model_validate(ours)
    assert OriginSettings.model_validate({"models_dir": data["OUTPOST_ORIGIN_MODELS_DIR"]})


def test_models_volume_is_mounted_read_only_where_the_origin_looks(
    resources: list[dict[str, Any]], deployment: dict[str, Any], origin_container: dict[str, Any]
) -> None:
    models_dir = find("ConfigMap", resources)["data"]["OUTPOST_ORIGIN_MODELS_DIR"]
    mounts = {m["mountPath"]: m for m in origin_container["volumeMounts"]}
    assert mounts[models_dir]["readOnly"] is True
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    claim = volumes[mounts[models_dir]["name"]]["persistentVolumeClaim"]["claimName"]
    assert claim == find("PersistentVolumeClaim", resources)["metadata"]["name"]


def test_vault_agent_writes_the_file_the_origin_reads(
    resources: list[dict[str, Any]], deployment: dict[str, Any], origin_container: dict[str, Any]
) -> None:
    notes = annotations(deployment)
    assert notes[VAULT_ANNOTATION + "agent-inject"] == "true"
    env = {e["name"]: e.get("value") for e in origin_container["env"]}
    approle_file = Path(env["OUTPOST_VAULT_APPROLE_FILE"])
    assert approle_file.parent == Path("/vault/secrets")  # the injector's mount point
    name = approle_file.name
    assert VAULT_ANNOTATION + f"agent-inject-secret-{name}" in notes
    template = notes[VAULT_ANNOTATION + f"agent-inject-template-{name}"]
    assert "auth/approle/role/outpost-origin/secret-id" in template
    # The agent runs as the origin's user, so the 0400 file is readable by the origin only.
    assert notes[VAULT_ANNOTATION + "agent-run-as-same-user"] == "true"
    assert notes[VAULT_ANNOTATION + f"agent-inject-perms-{name}"] == "0400"
    # The injector takes that user from the first container's own securityContext (the pod's
    # is not enough: without it the injector refuses the pod).
    pod = deployment["spec"]["template"]["spec"]
    assert pod["containers"][0] is origin_container
    assert origin_container["securityContext"]["runAsUser"] == pod["securityContext"]["runAsUser"]
    # Vault's Kubernetes role is bound to this pod's service account.
    sa = find("ServiceAccount", resources)["metadata"]["name"]
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == sa
    script = (ROOT / "deploy/vault/kubernetes-auth.sh").read_text()
    assert f"SERVICE_ACCOUNT=${{SERVICE_ACCOUNT:-{sa}}}" in script
    assert f"ROLE=${{ROLE:-{notes[VAULT_ANNOTATION + 'role']}}}" in script
    assert notes[VAULT_ANNOTATION + "auth-path"] == "auth/kubernetes"
    assert "AUTH_PATH=${AUTH_PATH:-kubernetes}" in script


def test_pods_are_hardened(deployment: dict[str, Any], origin_container: dict[str, Any]) -> None:
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    sc = origin_container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert {"requests", "limits"} <= set(origin_container["resources"])
    # With a read-only root, every writable path is an explicit volume (HF_HOME lives in /tmp).
    assert "/tmp" in {m["mountPath"] for m in origin_container["volumeMounts"]}


def test_replicas_autoscaler_budget_and_service_select_the_same_pods(
    resources: list[dict[str, Any]], deployment: dict[str, Any]
) -> None:
    labels = pod_labels(deployment)
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    assert deployment["spec"]["replicas"] >= 2
    hpa = find("HorizontalPodAutoscaler", resources)
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert hpa["spec"]["minReplicas"] >= 2
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    pdb = find("PodDisruptionBudget", resources)
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = find("Service", resources)
    assert service["spec"]["selector"].items() <= labels.items()


def documented_edge_origins() -> str:
    """The OUTPOST_EDGE_ORIGINS value the deployment guide tells operators to use in-cluster."""
    doc = (ROOT / "docs/deploy-kubernetes.md").read_text()
    match = re.search(r"OUTPOST_EDGE_ORIGINS='(\[.*?\])'", doc)
    assert match, "docs/deploy-kubernetes.md must give the in-cluster OUTPOST_EDGE_ORIGINS value"
    return match.group(1)


def test_the_documented_edge_pool_points_at_the_service(resources: list[dict[str, Any]]) -> None:
    service = find("Service", resources)
    name, namespace = service["metadata"]["name"], service["metadata"]["namespace"]
    port = service["spec"]["ports"][0]["port"]
    value = documented_edge_origins()
    config = load_config({"OUTPOST_EDGE_ORIGINS": value})
    assert [o.url for o in config.origins] == [
        f"http://{name}.{namespace}.svc.cluster.local:{port}"
    ]
    assert json.loads(value)  # what an operator pastes is plain JSON


@pytest.mark.parametrize("kind", ["Deployment", "Service", "ServiceAccount", "ConfigMap"])
def test_everything_lives_in_the_kustomization_namespace(
    resources: list[dict[str, Any]], kind: str
) -> None:
    assert find(kind, resources)["metadata"]["namespace"] == "outpost"
