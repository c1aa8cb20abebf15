"""The edge's Kubernetes manifests (deploy/k8s/edge): what kustomize builds passes strict, offline
schemas, and it agrees with the code: every setting is a real edge setting that loads with the
edge's own loader, ports and probes match `python -m edge`'s flags and settings, the public
Service leaves the metrics port out, the quota store URL names the Redis Service, and the edge
points at the origins' Service and issuer."""

from __future__ import annotations

import argparse
import copy
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from edge.config import EdgeConfig, load_config, setting_names
from edge.core.routes import match
from edge.server import config_from_args, parse_args
from origin.identity.router import build_router
from origin.identity.settings import IdentitySettings
from tests.deploy.conftest import (
    EDGE_DOCKERFILE,
    EDGE_K8S,
    K8S,
    KUBERNETES_VERSIONS,
    container,
    container_env,
    documents,
    find,
    kustomize_build,
    kustomize_resources,
    load_resources,
    runtime_instructions,
    validate,
)

EDGE = "outpost-edge"
REDIS = "outpost-quota-redis"
COMPONENT = EDGE_K8S / "vault-settings"
VAULT = "vault.hashicorp.com/"

Doc = dict[str, Any]


@pytest.fixture(scope="module")
def rendered() -> list[Doc]:
    """What `kubectl apply -k deploy/k8s/edge` would send."""
    return documents(kustomize_build(EDGE_K8S))


@pytest.fixture(scope="module")
def with_vault(tmp_path_factory: pytest.TempPathFactory) -> list[Doc]:
    """An operator's overlay enabling the vault-settings component, as the docs show it."""
    tmp = tmp_path_factory.mktemp("overlay")
    kustomization = {
        "resources": [os.path.relpath(EDGE_K8S, tmp)],
        "components": [os.path.relpath(COMPONENT, tmp)],
    }
    (tmp / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return documents(kustomize_build(tmp))


def pod(deployment: Doc) -> Doc:
    return deployment["spec"]["template"]["spec"]


def pod_labels(deployment: Doc) -> dict[str, str]:
    return deployment["spec"]["template"]["metadata"]["labels"]


def ports(c: Doc) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in c["ports"]}


def edge_env(docs: list[Doc]) -> dict[str, str]:
    """The edge container's settings environment."""
    return container_env(docs, EDGE, "edge")


@pytest.fixture
def started(
    rendered: list[Doc], monkeypatch: pytest.MonkeyPatch
) -> tuple[argparse.Namespace, EdgeConfig]:
    """What the edge container starts with: its flags, and its settings computed as
    `python -m edge` does from those flags over the container's environment (and only it)."""
    for name in [k for k in os.environ if k.startswith("OUTPOST_EDGE_")]:
        monkeypatch.delenv(name)
    for key, value in edge_env(rendered).items():
        monkeypatch.setenv(key, value)
    args = parse_args(container(find("Deployment", rendered, EDGE), "edge")["args"])
    return args, config_from_args(args)


def cluster_url(service: Doc, port_name: str) -> tuple[str, int]:
    meta = service["metadata"]
    port = next(p["port"] for p in service["spec"]["ports"] if p["name"] == port_name)
    return f"{meta['name']}.{meta['namespace']}.svc.cluster.local", port


# -- schemas --------------------------------------------------------------------------------------
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("build", ["rendered", "with_vault"])
def test_what_kustomize_builds_is_valid_against_strict_schemas(
    version: str, build: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """The edge's kustomization, and an overlay with the vault-settings component."""
    docs: list[Doc] = request.getfixturevalue(build)
    out = tmp_path / "edge.yaml"
    out.write_text(yaml.safe_dump_all(docs))
    assert len(docs) == len(kustomize_resources(EDGE_K8S))  # one object per file
    result = validate([out], version)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed") == len(docs)


@pytest.mark.parametrize(
    ("name", "container_name", "field", "misspelt"),
    [(EDGE, "edge", "readinessProbe", "readinessProbes"), (REDIS, "redis", "args", "arg")],
)
def test_strict_validation_rejects_a_misspelt_field(
    rendered: list[Doc], tmp_path: Path, name: str, container_name: str, field: str, misspelt: str
) -> None:
    """The validator is not a rubber stamp: one misspelt field in a Deployment fails."""
    deployment = copy.deepcopy(find("Deployment", rendered, name))
    c = container(deployment, container_name)
    c[misspelt] = c.pop(field)
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(deployment))
    result = validate([broken], KUBERNETES_VERSIONS[-1])
    assert result.returncode != 0
    assert misspelt in result.stdout + result.stderr


def test_kustomization_lists_every_manifest_in_the_folder() -> None:
    on_disk = {p.name for p in EDGE_K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert {p.name for p in kustomize_resources(EDGE_K8S)} == on_disk


def test_everything_lives_in_the_origins_namespace_which_the_edge_does_not_own(
    rendered: list[Doc],
) -> None:
    """No Namespace object: deleting the edge's kustomization never deletes the origins."""
    namespace = find("Namespace", load_resources(K8S))["metadata"]["name"]
    assert "Namespace" not in {d["kind"] for d in rendered}
    assert {d["metadata"]["namespace"] for d in rendered} == {namespace}
    assert all(d["metadata"]["labels"]["app.kubernetes.io/part-of"] == "outpost" for d in rendered)


# -- settings --------------------------------------------------------------------------------------
def test_every_setting_in_the_manifests_is_a_real_edge_setting(rendered: list[Doc]) -> None:
    used = set(edge_env(rendered))
    assert used, "no settings in the manifests"
    assert used - set(setting_names()) == set()


def test_the_configmap_loads_with_the_edges_own_loader(
    rendered: list[Doc], started: tuple[argparse.Namespace, EdgeConfig]
) -> None:
    _, config = started
    assert config == load_config(edge_env(rendered))  # the flags set only where to listen
    assert config.quota_store == "redis"
    assert config.quota_fail_mode == "local"  # docs/deploy-kubernetes.md says why
    assert 0 < config.quota_timeout_seconds <= 0.1


def test_the_quota_store_url_names_the_redis_service(rendered: list[Doc]) -> None:
    config = load_config(edge_env(rendered))
    url = urlsplit(config.quota_redis_url)
    service = find("Service", rendered, REDIS)
    assert url.scheme == "redis"
    assert (url.hostname, url.port) == cluster_url(service, "redis")
    redis = find("Deployment", rendered, REDIS)
    assert service["spec"]["selector"].items() <= pod_labels(redis).items()
    (target,) = [p["targetPort"] for p in service["spec"]["ports"]]
    c = container(redis, "redis")
    args = c["args"]
    assert ports(c)[target] == int(args[args.index("--port") + 1])


def test_the_edge_points_at_the_origins_service_and_trusts_the_origins_issuer(
    rendered: list[Doc],
) -> None:
    config = load_config(edge_env(rendered))
    origin = load_resources(K8S)
    host, port = cluster_url(find("Service", origin), "http")
    assert [o.url for o in config.origins] == [f"http://{host}:{port}"]
    public_url = find("ConfigMap", origin)["data"]["OUTPOST_IDENTITY_ISSUER"]
    (issuer,) = config.issuers
    assert issuer.issuer == public_url
    # Its keys are read in-cluster, from a route the origin really serves.
    jwks = urlsplit(issuer.jwks_url)
    assert (jwks.scheme, jwks.hostname, jwks.port) == ("http", host, port)
    # (The identity router is mounted when Vault is configured; its routes need no Vault to list.)
    routes = build_router(IdentitySettings(), None, None, None).routes  # type: ignore[arg-type]
    assert jwks.path in {r.path for r in routes}
    # TLS ends in front of the edge: device-key proofs name the public URL, not the pod's.
    assert config.dpop.public_url == public_url


# -- the container, its ports and probes -----------------------------------------------------------
def test_the_container_runs_the_images_command_on_its_declared_ports(
    rendered: list[Doc], started: tuple[argparse.Namespace, EdgeConfig]
) -> None:
    c = container(find("Deployment", rendered, EDGE), "edge")
    args, config = started
    (cmd,) = runtime_instructions(EDGE_DOCKERFILE, "CMD")
    assert c["args"] == yaml.safe_load(cmd)  # the same as the image's own
    assert "command" not in c  # the image's ENTRYPOINT: python -m edge
    assert c["image"] == "outpost-edge:0.1.0"
    assert args.host == "0.0.0.0" and config.admin_host == "0.0.0.0"
    assert ports(c) == {"http": args.port, "admin": config.admin_port}
    assert args.port != config.admin_port


def test_probes_ask_the_public_listener_for_healthz(rendered: list[Doc]) -> None:
    c = container(find("Deployment", rendered, EDGE), "edge")
    probes = {k: c[k]["httpGet"] for k in c if k.endswith("Probe")}
    assert set(probes) == {"livenessProbe", "readinessProbe"}
    for probe in probes.values():
        assert probe["port"] == "http"
        found = match("GET", probe["path"])
        assert found is not None and found.route.name == "healthz" and found.route.local


def test_prometheus_scrapes_the_internal_listener(
    rendered: list[Doc], started: tuple[argparse.Namespace, EdgeConfig]
) -> None:
    notes = find("Deployment", rendered, EDGE)["spec"]["template"]["metadata"]["annotations"]
    _, config = started
    assert notes["prometheus.io/scrape"] == "true"
    assert notes["prometheus.io/port"] == str(config.admin_port)
    found = match("GET", notes["prometheus.io/path"])
    assert found is not None and found.route.name == "metrics"


def test_the_public_service_selects_the_edge_and_leaves_the_metrics_port_out(
    rendered: list[Doc],
) -> None:
    deployment = find("Deployment", rendered, EDGE)
    service = find("Service", rendered, EDGE)
    labels = pod_labels(deployment)
    assert service["spec"]["selector"].items() <= labels.items()
    # ... and no other pods: not Redis's.
    redis_labels = pod_labels(find("Deployment", rendered, REDIS))
    assert not service["spec"]["selector"].items() <= redis_labels.items()
    declared = ports(container(deployment, "edge"))
    targets = [p["targetPort"] for p in service["spec"]["ports"]]
    assert targets == ["http"]
    assert declared["admin"] not in [p["port"] for p in service["spec"]["ports"]]


def test_the_edge_runs_as_replicas_with_an_autoscaler_and_a_disruption_budget(
    rendered: list[Doc],
) -> None:
    deployment = find("Deployment", rendered, EDGE)
    labels = pod_labels(deployment)
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert deployment["spec"]["replicas"] >= 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    hpa = find("HorizontalPodAutoscaler", rendered)
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": EDGE,
    }
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    pdb = find("PodDisruptionBudget", rendered)
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["maxUnavailable"] < hpa["spec"]["minReplicas"]


def memory_bytes(quantity: str) -> int:
    units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30}
    return int(quantity[:-2]) * units[quantity[-2:]]


def test_the_response_cache_fits_well_inside_the_memory_limit(rendered: list[Doc]) -> None:
    c = container(find("Deployment", rendered, EDGE), "edge")
    limit = memory_bytes(c["resources"]["limits"]["memory"])
    assert load_config(edge_env(rendered)).cache_max_bytes <= limit // 4


# -- Redis -----------------------------------------------------------------------------------------
def test_redis_is_one_node_without_persistence_and_bounded(rendered: list[Doc]) -> None:
    """One node: the quota script's keys must be on one node. Recreate: never two nodes behind
    the Service during a rollout. No persistence: buckets are soft state. maxmemory under the
    limit, evicting the keys nearest expiry (every bucket has a TTL)."""
    redis = find("Deployment", rendered, REDIS)
    assert redis["spec"]["replicas"] == 1
    assert redis["spec"]["strategy"] == {"type": "Recreate"}
    spec = pod(redis)
    assert not [v for v in spec.get("volumes", []) if "persistentVolumeClaim" in v]
    c = container(redis, "redis")
    assert c["command"] == ["redis-server"]
    args = c["args"]
    option = dict(zip(args[::2], args[1::2], strict=True))
    assert option["--save"] == "" and option["--appendonly"] == "no"
    assert option["--maxmemory-policy"] == "volatile-ttl"
    assert option["--maxmemory"].endswith("mb")
    maxmemory = int(option["--maxmemory"][:-2]) << 20
    assert maxmemory < memory_bytes(c["resources"]["limits"]["memory"])
    assert {"cpu", "memory"} <= set(c["resources"]["requests"]) & set(c["resources"]["limits"])
    # Pinned to a release; Alpine's, whose `redis` user and group the pod runs as.
    assert re.fullmatch(r"redis:\d+\.\d+\.\d+-alpine", c["image"])


@pytest.mark.parametrize(("name", "container_name"), [(EDGE, "edge"), (REDIS, "redis")])
def test_pods_are_hardened(rendered: list[Doc], name: str, container_name: str) -> None:
    deployment = find("Deployment", rendered, name)
    spec = pod(deployment)
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] != 0
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False  # neither calls the Kubernetes API
    c = container(deployment, container_name)
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert {"requests", "limits"} <= set(c["resources"])
    assert {"livenessProbe", "readinessProbe"} <= set(c)


def policy_ingress(docs: list[Doc], name: str) -> list[Doc]:
    policy = find("NetworkPolicy", docs, name)
    labels = pod_labels(find("Deployment", docs, name))
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    return policy["spec"]["ingress"]


def test_only_the_edge_may_reach_redis(rendered: list[Doc]) -> None:
    (rule,) = policy_ingress(rendered, REDIS)
    (peer,) = rule["from"]
    edge_labels = pod_labels(find("Deployment", rendered, EDGE))
    assert set(peer) == {"podSelector"}
    assert peer["podSelector"]["matchLabels"].items() <= edge_labels.items()
    assert [p["port"] for p in rule["ports"]] == ["redis"]


def test_anyone_may_reach_the_public_port_and_only_monitoring_the_internal_one(
    rendered: list[Doc],
) -> None:
    rules = policy_ingress(rendered, EDGE)
    by_port = {p["port"]: r for r in rules for p in r["ports"]}
    assert set(by_port) == {"http", "admin"}
    assert "from" not in by_port["http"]
    (peer,) = by_port["admin"]["from"]
    assert set(peer) == {"namespaceSelector"} and peer["namespaceSelector"]["matchLabels"]


# -- secret settings from Vault (the vault-settings component) -------------------------------------
def test_the_vault_component_adds_the_agent_and_a_settings_file_the_edge_reads(
    rendered: list[Doc], with_vault: list[Doc]
) -> None:
    base = find("Deployment", rendered, EDGE)
    deployment = find("Deployment", with_vault, EDGE)
    notes = deployment["spec"]["template"]["metadata"]["annotations"]
    assert notes[VAULT + "agent-inject"] == "true"
    assert notes[VAULT + "agent-pre-populate-only"] == "true"
    assert notes[VAULT + "role"] == "outpost-edge"
    args = parse_args(container(deployment, "edge")["args"])
    before = parse_args(container(base, "edge")["args"])
    assert (args.host, args.port) == (before.host, before.port)
    # --config names the file the agent writes, in its in-memory volume, readable by the edge only.
    assert args.config.parent == Path("/vault/secrets")
    assert notes[VAULT + f"agent-inject-secret-{args.config.name}"].startswith("secret/data/")
    assert notes[VAULT + f"agent-inject-template-{args.config.name}"]
    assert notes[VAULT + f"agent-inject-perms-{args.config.name}"] == "0400"
    # The agent runs as the edge's user (the injector reads the container's runAsUser), and
    # logs in with the service account's token, mounted only with this component.
    assert notes[VAULT + "agent-run-as-same-user"] == "true"
    c = container(deployment, "edge")
    assert c["securityContext"]["runAsUser"] == pod(deployment)["securityContext"]["runAsUser"]
    assert pod(deployment)["automountServiceAccountToken"] is True
    account = find("ServiceAccount", rendered)["metadata"]["name"]
    assert pod(deployment)["serviceAccountName"] == account
    # Nothing else changes.
    for key in ("envFrom", "ports", "livenessProbe", "readinessProbe", "resources"):
        assert c[key] == container(base, "edge")[key]
