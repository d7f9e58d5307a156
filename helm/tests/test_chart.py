"""Tests of the rapport Helm chart (helm/rapport), offline: no helm binary, no cluster.

helm-python-sdk embeds Helm v4 (lint, render with values.schema.json validation);
kubernetes-validate checks every rendered manifest strictly against the Kubernetes
OpenAPI schemas of the oldest (1.30) and a current (1.34) supported version.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from pathlib import Path
from typing import Any, Iterator

import helm_python
import kubernetes_validate
import pytest
import yaml

HELM_DIR = Path(__file__).resolve().parent.parent
CHART = HELM_DIR / "rapport"
REPO = HELM_DIR.parent
README = HELM_DIR.parent / "README.md"  # the chart guide lives in the main README
DOCKERFILE = REPO / "Dockerfile"

RELEASE = "rel"
NAMESPACE = "rapport"
FULLNAME = "rel-rapport"
KUBE_VERSIONS = ["1.30.0", "1.34.0"]
GRPC_PORT = 50051
UID = 10001
DRAIN_SECONDS = 20  # RAPPORT_SHUTDOWN_GRACE_SECONDS, the binary's default drain

PG_URL = "postgres://rapport:s3cret@postgres.db.svc:5432/rapport?sslmode=require"
DB = {"database": {"url": PG_URL}}
EXISTING = {"database": {"existingSecret": "rapport-db", "existingSecretKey": "url"}}


def merge(*layers: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge value layers, later ones win."""
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = merge(out[key], value)
            else:
                out[key] = copy.deepcopy(value)
    return out


SCENARIOS: dict[str, dict[str, Any]] = {
    "default": DB,
    "autoscaling": merge(DB, {"autoscaling": {"enabled": True, "targetMemoryUtilizationPercentage": 80}}),
    "ingress": merge(
        DB,
        {
            "ingress": {
                "enabled": True,
                "className": "nginx",
                "annotations": {"cert-manager.io/cluster-issuer": "letsencrypt"},
                "hosts": [{"host": "rapport.example.com", "paths": [{"path": "/", "pathType": "Prefix"}]}],
                "tls": [{"secretName": "rapport-tls", "hosts": ["rapport.example.com"]}],
            }
        },
    ),
    "existing-secret": EXISTING,
    "network-policy": merge(
        DB,
        {
            "networkPolicy": {
                "enabled": True,
                "allowFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "frontend"}}}],
                "metricsAllowFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
                "egress": [{"ports": [{"port": 53, "protocol": "UDP"}, {"port": 5432, "protocol": "TCP"}]}],
            }
        },
    ),
    "demo": {"demo": {"enabled": True}},
    "service-monitor": merge(
        DB,
        {"metrics": {"podAnnotations": True, "serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}}},
    ),
    "no-migration-job": merge(DB, {"migrations": {"enabled": False}}),
    "everything": merge(
        EXISTING,
        {
            "autoscaling": {"enabled": True},
            "ingress": {"enabled": True},
            "networkPolicy": {"enabled": True},
            "metrics": {"serviceMonitor": {"enabled": True, "namespace": "monitoring"}},
            "otel": {"endpoint": "http://otel-collector.observability:4317"},
            "config": {"bootstrapTenant": True, "logLevel": "info,rapport=debug"},
            "serviceAccount": {"create": False, "name": "rapport-sa"},
            "imagePullSecrets": [{"name": "regcred"}],
            "image": {"digest": "sha256:" + "a" * 64},
            "extraEnv": [
                {"name": "PGSSLROOTCERT", "value": "/etc/rapport/ca/ca.crt"},
                {"name": "OTEL_EXPORTER_OTLP_HEADERS", "valueFrom": {"secretKeyRef": {"name": "otel-auth", "key": "headers"}}},
            ],
            "extraVolumes": [{"name": "db-ca", "secret": {"secretName": "db-ca"}}],
            "extraVolumeMounts": [{"name": "db-ca", "mountPath": "/etc/rapport/ca", "readOnly": True}],
            "podDisruptionBudget": {"minAvailable": "50%"},
            "topologySpreadConstraints": [
                {
                    "maxSkew": 1,
                    "topologyKey": "topology.kubernetes.io/zone",
                    "whenUnsatisfiable": "ScheduleAnyway",
                    "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "rapport"}},
                }
            ],
            "preStopSleepSeconds": 10,
            "terminationGracePeriodSeconds": 45,
        },
    ),
}


# --------------------------------------------------------------------------- helpers


@functools.lru_cache(maxsize=None)
def _render_cached(values_json: str, name: str) -> tuple[tuple[str, str], ...]:
    with helm_python.Chart.load(CHART) as chart:
        rendered = chart.render(json.loads(values_json), name=name, namespace=NAMESPACE)
    return tuple(sorted(rendered.items()))


def render_files(values: dict[str, Any], name: str = RELEASE) -> dict[str, str]:
    """Template path -> rendered text (NOTES.txt included)."""
    return dict(_render_cached(json.dumps(values, sort_keys=True), name))


def render(values: dict[str, Any], name: str = RELEASE) -> list[dict[str, Any]]:
    """The rendered Kubernetes objects."""
    docs = []
    for path, text in render_files(values, name).items():
        if not path.endswith(".yaml"):
            continue
        docs.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return docs


def find(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = find(docs, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def render_error(values: dict[str, Any]) -> str:
    with pytest.raises(helm_python.HelmError) as info:
        render_files(values)
    return str(info.value)


def annotations(doc: dict[str, Any]) -> dict[str, str]:
    return doc["metadata"].get("annotations") or {}


def hook_events(doc: dict[str, Any]) -> set[str]:
    raw = annotations(doc).get("helm.sh/hook", "")
    return {h.strip() for h in raw.split(",") if h.strip()}


def hook_weight(doc: dict[str, Any]) -> int:
    return int(annotations(doc).get("helm.sh/hook-weight", "0"))


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["template"]["spec"]


def server_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (container,) = [c for c in pod_spec(one(docs, "Deployment"))["containers"] if c["name"] == "rapport"]
    return container


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e for e in container.get("env", [])}


def config_map(docs: list[dict[str, Any]]) -> dict[str, str]:
    return one(docs, "ConfigMap")["data"]


def references(obj: Any) -> Iterator[tuple[str, str]]:
    """Every (kind, name) a manifest reads from another object: Secrets, ConfigMaps,
    PersistentVolumeClaims and ServiceAccounts, wherever they appear."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key in ("secretRef", "secretKeyRef") and isinstance(value, dict):
                yield "Secret", value["name"]
            elif key in ("configMapRef", "configMapKeyRef") and isinstance(value, dict):
                yield "ConfigMap", value["name"]
            elif key == "secret" and isinstance(value, dict) and "secretName" in value:
                yield "Secret", value["secretName"]
            elif key == "configMap" and isinstance(value, dict) and "name" in value:
                yield "ConfigMap", value["name"]
            elif key == "persistentVolumeClaim" and isinstance(value, dict):
                yield "PersistentVolumeClaim", value["claimName"]
            elif key == "serviceAccountName" and isinstance(value, str):
                yield "ServiceAccount", value
            elif key == "imagePullSecrets" and isinstance(value, list):
                for item in value:
                    yield "Secret", item["name"]
            yield from references(value)
    elif isinstance(obj, list):
        for item in obj:
            yield from references(item)


def hook_dependency_violations(docs: list[dict[str, Any]]) -> list[str]:
    """A hook runs before the chart's ordinary resources exist (pre-install) or while
    they are still the old revision (pre-upgrade): whatever it reads must be a hook of
    the same events with a lower or equal weight, or not rendered by the chart at all."""
    rendered = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    problems = []
    for doc in docs:
        events = hook_events(doc)
        if not events:
            continue
        body = {key: value for key, value in doc.items() if key != "metadata"}
        for ref in sorted(set(references(body))):
            target = rendered.get(ref)
            if target is None:
                continue  # not created by the chart (existingSecret, default service account...)
            who = f"hook {doc['kind']}/{doc['metadata']['name']} reads {ref[0]}/{ref[1]}"
            if not hook_events(target):
                problems.append(f"{who}, an ordinary (non-hook) resource")
            elif not events <= hook_events(target):
                problems.append(f"{who}, a hook for {sorted(hook_events(target))} only")
            elif hook_weight(target) > hook_weight(doc):
                problems.append(f"{who}, a hook with a higher weight")
            elif "hook-succeeded" in annotations(target).get("helm.sh/hook-delete-policy", ""):
                problems.append(f"{who}, which is deleted once its hook succeeds")
    return problems


def check_service_monitor(doc: dict[str, Any], docs: list[dict[str, Any]]) -> None:
    """kubernetes-validate has no schema for the prometheus-operator CRD: check by hand."""
    assert doc["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(doc) == {"apiVersion", "kind", "metadata", "spec"}
    spec = doc["spec"]
    assert set(spec) <= {"endpoints", "selector", "namespaceSelector", "jobLabel"}
    service = one(docs, "Service")
    labels = service["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    assert spec["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    port_names = {p["name"] for p in service["spec"]["ports"]}
    for endpoint in spec["endpoints"]:
        assert set(endpoint) <= {"port", "path", "scheme", "interval", "scrapeTimeout"}
        assert endpoint["port"] in port_names
        assert endpoint["path"] == "/metrics"
        assert re.fullmatch(r"(\d+(ms|s|m|h))+", endpoint["interval"])


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


# --------------------------------------------------------------------------- lint


@pytest.mark.parametrize("kube_version", ["v1.30.0", "v1.34.0"])
@pytest.mark.parametrize("scenario", ["default", "demo", "everything"])
def test_lint_has_no_findings(scenario: str, kube_version: str) -> None:
    report = helm_python.lint(CHART, SCENARIOS[scenario], strict=True, kube_version=kube_version)
    assert report["total_charts_linted"] == 1
    assert report["errors"] == []
    assert report["messages"] == []


def test_lint_of_the_bare_chart_is_clean() -> None:
    # Helm's lint mode turns `fail` into a log line, so `helm lint helm/rapport` with the
    # chart's own values (no database) still lints every template.
    report = helm_python.lint(CHART, None, strict=True, kube_version="v1.34.0")
    assert report == {"total_charts_linted": 1, "messages": [], "errors": []}


# --------------------------------------------------------------------------- schema validation


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_manifest_validates_strictly(scenario: str, kube_version: str) -> None:
    docs = render(SCENARIOS[scenario])
    assert docs
    for doc in docs:
        if doc["kind"] == "ServiceMonitor":
            check_service_monitor(doc, docs)
            continue
        try:
            kubernetes_validate.validate(doc, kube_version, strict=True)
        except kubernetes_validate.ValidationError as err:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} invalid for {kube_version}: "
                        f"{'.'.join(map(str, err.path))}: {err.message}")


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_expected_kinds_per_scenario(scenario: str) -> None:
    values = SCENARIOS[scenario]
    kinds = sorted(d["kind"] for d in render(values))
    expected = {"ConfigMap", "Deployment", "Service"}
    merged = merge(helm_python.Chart.load(CHART).values, values)
    demo = merged["demo"]["enabled"]
    if merged["serviceAccount"]["create"]:
        expected.add("ServiceAccount")
    if merged["database"]["url"] and not demo:
        expected.add("Secret")
    if merged["migrations"]["enabled"] and not demo:
        expected.add("Job")
    if merged["autoscaling"]["enabled"] and not demo:
        expected.add("HorizontalPodAutoscaler")
    if merged["podDisruptionBudget"]["enabled"] and not demo:
        expected.add("PodDisruptionBudget")
    if demo:
        expected.add("PersistentVolumeClaim")
    for flag, kind in [(merged["ingress"]["enabled"], "Ingress"),
                       (merged["networkPolicy"]["enabled"], "NetworkPolicy"),
                       (merged["metrics"]["serviceMonitor"]["enabled"], "ServiceMonitor")]:
        if flag:
            expected.add(kind)
    assert kinds == sorted(expected)


def test_all_names_fit_with_a_long_release_name() -> None:
    name = "a-very-long-release-name-for-rapport-in-production-x"  # 52 characters
    docs = render(SCENARIOS["default"], name=name)
    for doc in docs:
        assert len(doc["metadata"]["name"]) <= 63, doc["metadata"]["name"]
    assert one(docs, "Job")["metadata"]["name"].endswith("-migrate")


# --------------------------------------------------------------------------- probes and shutdown


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_native_grpc_probes_on_the_grpc_port(scenario: str) -> None:
    container = server_container(render(SCENARIOS[scenario]))
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": GRPC_PORT, "http": 8080, "metrics": 9464}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        spec = container[probe]
        assert spec["grpc"]["port"] == GRPC_PORT == ports["grpc"], probe
        assert not {"httpGet", "exec", "tcpSocket"} & set(spec), probe
        assert spec.get("grpc", {}).get("service", "") == "", probe


def test_probe_grpc_service_is_configurable() -> None:
    values = merge(DB, {"probes": {"liveness": {"grpcService": "liveness"}}})
    container = server_container(render(values))
    assert container["livenessProbe"]["grpc"] == {"port": GRPC_PORT, "service": "liveness"}
    assert "service" not in container["readinessProbe"]["grpc"]


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_grace_period_covers_prestop_sleep_and_drain(scenario: str) -> None:
    docs = render(SCENARIOS[scenario])
    container = server_container(docs)
    pre_stop = container["lifecycle"]["preStop"]
    assert set(pre_stop) == {"sleep"}, "distroless has no shell: native sleep action only"
    sleep = pre_stop["sleep"]["seconds"]
    assert sleep > 0
    drain = int(config_map(docs)["RAPPORT_SHUTDOWN_GRACE_SECONDS"])
    assert drain == DRAIN_SECONDS
    grace = pod_spec(one(docs, "Deployment"))["terminationGracePeriodSeconds"]
    assert grace > sleep + drain


def test_too_short_grace_period_fails_rendering() -> None:
    message = render_error(merge(DB, {"terminationGracePeriodSeconds": 25}))
    assert "terminationGracePeriodSeconds (25) must exceed" in message
    message = render_error(merge(DB, {"config": {"shutdownGraceSeconds": 40}}))
    assert "must exceed preStopSleepSeconds + config.shutdownGraceSeconds (45)" in message


def test_prestop_sleep_can_be_disabled() -> None:
    container = server_container(render(merge(DB, {"preStopSleepSeconds": 0})))
    assert "lifecycle" not in container


# --------------------------------------------------------------------------- security


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_restricted_pod_security_everywhere(scenario: str) -> None:
    docs = render(SCENARIOS[scenario])
    workloads = find(docs, "Deployment") + find(docs, "Job")
    assert workloads
    for workload in workloads:
        spec = pod_spec(workload)
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True
        assert pod["runAsUser"] == UID and pod["runAsGroup"] == UID
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["automountServiceAccountToken"] is False
        assert spec["enableServiceLinks"] is False
        assert not {"hostNetwork", "hostPID", "hostIPC"} & set(spec)
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert "emptyDir" in volumes["tmp"]
        for container in spec["containers"]:
            sc = container["securityContext"]
            assert sc["runAsNonRoot"] is True
            assert sc["runAsUser"] == UID
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["privileged"] is False
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert mounts["/tmp"] == "tmp"
            assert "resources" in container and container["resources"]["requests"]


def test_dockerfile_user_matches_the_chart() -> None:
    text = DOCKERFILE.read_text()
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users, "the runtime stage sets USER"
    uid, _, gid = users[-1].partition(":")
    assert int(uid) == UID and int(gid or uid) == UID
    values = helm_python.Chart.load(CHART).values
    assert values["podSecurityContext"]["runAsUser"] == UID
    assert values["securityContext"]["runAsUser"] == UID


def test_dockerfile_is_multi_stage_and_minimal() -> None:
    text = DOCKERFILE.read_text()
    stages = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert stages[0].startswith("rust:1.95-bookworm")
    assert "distroless" in stages[-1] or "slim" in stages[-1]
    assert "cargo build --release --locked --bin rapport" in text
    assert re.search(r"^EXPOSE\s+50051\s+8080\s+9464\s*$", text, re.M)
    assert 'ENTRYPOINT ["/usr/local/bin/rapport"]' in text
    assert 'CMD ["serve"]' in text
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {"target/", ".git/"} <= set(ignored)


# --------------------------------------------------------------------------- migrations and hooks


@pytest.mark.parametrize("scenario", [s for s in sorted(SCENARIOS) if s not in ("demo", "no-migration-job")])
def test_migration_job_is_a_pre_install_pre_upgrade_hook(scenario: str) -> None:
    docs = render(SCENARIOS[scenario])
    job = one(docs, "Job")
    ann = annotations(job)
    assert hook_events(job) == {"pre-install", "pre-upgrade"}
    assert re.fullmatch(r"-?\d+", ann["helm.sh/hook-weight"])
    assert set(ann["helm.sh/hook-delete-policy"].split(",")) == {"before-hook-creation", "hook-succeeded"}
    spec = pod_spec(job)
    assert spec["restartPolicy"] == "Never"
    (container,) = spec["containers"]
    assert container["args"] == ["migrate"]
    assert container["image"] == server_container(docs)["image"]
    assert "DATABASE_URL" in env_of(container)
    assert env_of(container)["DATABASE_URL"] == env_of(server_container(docs))["DATABASE_URL"]
    # The Job migrated, so the server must not race it on start.
    assert config_map(docs)["RAPPORT_MIGRATE_ON_START"] == "false"


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_hooks_read_only_earlier_hooks_or_external_objects(scenario: str) -> None:
    docs = render(SCENARIOS[scenario])
    assert hook_dependency_violations(docs) == []


def test_hook_dependency_check_catches_an_ordinary_secret() -> None:
    docs = copy.deepcopy(render(SCENARIOS["default"]))
    secret = one(docs, "Secret")
    del secret["metadata"]["annotations"]  # as if the chart created it as an ordinary resource
    problems = hook_dependency_violations(docs)
    assert problems and "an ordinary (non-hook) resource" in problems[0]
    job = one(docs, "Job")
    pod_spec(job)["serviceAccountName"] = FULLNAME  # the chart-created ServiceAccount
    assert any("ServiceAccount/" in p for p in hook_dependency_violations(docs))


def test_chart_created_database_secret_is_an_earlier_hook_that_survives() -> None:
    docs = render(SCENARIOS["default"])
    secret = one(docs, "Secret")
    job = one(docs, "Job")
    assert hook_events(secret) == {"pre-install", "pre-upgrade"}
    assert hook_weight(secret) < hook_weight(job)
    assert annotations(secret)["helm.sh/hook-delete-policy"] == "before-hook-creation"
    import base64
    assert base64.b64decode(secret["data"]["DATABASE_URL"]).decode() == PG_URL
    ref = env_of(server_container(docs))["DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": secret["metadata"]["name"], "key": "DATABASE_URL"}
    assert PG_URL not in json.dumps(one(docs, "Deployment")) + json.dumps(one(docs, "ConfigMap"))


def test_existing_secret_is_used_and_not_created() -> None:
    docs = render(SCENARIOS["existing-secret"])
    assert find(docs, "Secret") == []
    for container in [server_container(docs), pod_spec(one(docs, "Job"))["containers"][0]]:
        ref = env_of(container)["DATABASE_URL"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "rapport-db", "key": "url"}


def test_migration_job_never_uses_the_chart_created_service_account() -> None:
    docs = render(SCENARIOS["default"])
    assert pod_spec(one(docs, "Deployment"))["serviceAccountName"] == FULLNAME
    assert pod_spec(one(docs, "Job"))["serviceAccountName"] == "default"
    docs = render(merge(DB, {"migrations": {"serviceAccountName": "migrator"}}))
    assert pod_spec(one(docs, "Job"))["serviceAccountName"] == "migrator"
    docs = render(SCENARIOS["everything"])
    assert pod_spec(one(docs, "Job"))["serviceAccountName"] == "rapport-sa"


def test_without_migration_job_the_server_migrates_on_start() -> None:
    docs = render(SCENARIOS["no-migration-job"])
    assert find(docs, "Job") == []
    assert config_map(docs)["RAPPORT_MIGRATE_ON_START"] == "true"


# --------------------------------------------------------------------------- values, schema, failures


def test_schema_rejects_a_wrong_type() -> None:
    message = render_error(merge(DB, {"replicaCount": "two"}))
    assert "replicaCount" in message
    with helm_python.Chart.load(CHART) as chart:
        with pytest.raises(helm_python.HelmValuesError):
            chart.validate_schema(merge(DB, {"replicaCount": "two"}))


def test_schema_rejects_an_unknown_top_level_key() -> None:
    message = render_error(merge(DB, {"replicas": 3}))
    assert "replicas" in message
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["additionalProperties"] is False


@pytest.mark.parametrize(
    "bad",
    [
        {"database": {"uri": PG_URL}},
        {"config": {"logFormat": "xml"}},
        {"containerPorts": {"grpc": 70000}},
        {"autoscaling": {"enabled": "yes"}},
        {"probes": {"liveness": {"periodSeconds": 0}}},
    ],
    ids=["nested-unknown-key", "bad-enum", "bad-port", "bool-as-string", "zero-period"],
)
def test_schema_rejects_bad_nested_values(bad: dict[str, Any]) -> None:
    with helm_python.Chart.load(CHART) as chart:
        with pytest.raises(helm_python.HelmValuesError):
            chart.validate_schema(merge(DB, bad))


def test_schema_accepts_the_defaults_and_covers_every_value() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    with helm_python.Chart.load(CHART) as chart:
        chart.validate_schema(values)
        assert chart.values == values
    assert set(values) <= set(schema["properties"])


def test_rendering_without_a_database_fails_with_a_clear_message() -> None:
    message = render_error({})
    assert "a PostgreSQL database is required" in message
    assert "database.url" in message and "database.existingSecret" in message and "demo.enabled" in message


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ({"database": {"url": "sqlite:///data/rapport.db"}}, "must be a PostgreSQL URL"),
        ({"database": {"url": PG_URL, "existingSecret": "x"}}, "set only one of database.url and database.existingSecret"),
        ({"demo": {"enabled": True}, "database": {"url": PG_URL}}, "demo.enabled runs on SQLite"),
        (merge(DB, {"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 3}}), "minReplicas must not exceed"),
        (merge(DB, {"podDisruptionBudget": {"maxUnavailable": None}}), "needs minAvailable or maxUnavailable"),
    ],
    ids=["sqlite-without-demo", "url-and-existing-secret", "demo-with-url", "hpa-min-over-max", "pdb-empty"],
)
def test_inconsistent_values_fail_rendering(values: dict[str, Any], needle: str) -> None:
    assert needle in render_error(values)


def test_postgresql_scheme_alias_is_accepted() -> None:
    docs = render({"database": {"url": "postgresql://u:p@db/rapport"}})
    assert one(docs, "Secret")


# --------------------------------------------------------------------------- workload shape


def test_service_exposes_named_ports_with_grpc_app_protocol() -> None:
    docs = render(SCENARIOS["default"])
    service = one(docs, "Service")
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert set(ports) == {"grpc", "http", "metrics"}
    assert ports["grpc"]["appProtocol"] == "grpc"
    assert ports["grpc"]["port"] == GRPC_PORT and ports["grpc"]["targetPort"] == "grpc"
    assert ports["http"]["targetPort"] == "http" and ports["metrics"]["targetPort"] == "metrics"


def test_service_selects_server_pods_but_not_the_migration_pod() -> None:
    docs = render(SCENARIOS["everything"])
    selector = one(docs, "Service")["spec"]["selector"]
    deployment = one(docs, "Deployment")
    assert deployment["spec"]["selector"]["matchLabels"] == selector
    assert matches(selector, deployment["spec"]["template"]["metadata"]["labels"])
    job_labels = one(docs, "Job")["spec"]["template"]["metadata"]["labels"]
    assert not matches(selector, job_labels)
    for kind in ("PodDisruptionBudget",):
        assert one(docs, kind)["spec"]["selector"]["matchLabels"] == selector
    assert one(docs, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"] == selector
    for doc in docs:
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "rapport"
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["helm.sh/chart"] == "rapport-0.1.0"


def test_configuration_comes_from_a_config_map_and_a_secret() -> None:
    docs = render(SCENARIOS["default"])
    container = server_container(docs)
    assert container["args"] == ["serve"]
    assert container["envFrom"] == [{"configMapRef": {"name": FULLNAME}}]
    data = config_map(docs)
    assert data == {
        "RAPPORT_GRPC_ADDR": "0.0.0.0:50051",
        "RAPPORT_HTTP_ADDR": "0.0.0.0:8080",
        "RAPPORT_ADMIN_ADDR": "0.0.0.0:9464",
        "RAPPORT_LOG_FORMAT": "json",
        "RAPPORT_LOG_LEVEL": "info",
        "RAPPORT_MIGRATE_ON_START": "false",
        "RAPPORT_BOOTSTRAP_TENANT": "false",
        "RAPPORT_SHUTDOWN_GRACE_SECONDS": "20",
        "RAPPORT_DB_MAX_CONNECTIONS": "10",
        "OTEL_SERVICE_NAME": "rapport",
    }
    assert set(env_of(container)) == {"DATABASE_URL"}
    annotations_ = deployment_pod_annotations(docs)
    assert re.fullmatch(r"[0-9a-f]{64}", annotations_["checksum/config"])


def deployment_pod_annotations(docs: list[dict[str, Any]]) -> dict[str, str]:
    return one(docs, "Deployment")["spec"]["template"]["metadata"].get("annotations") or {}


def test_config_changes_roll_the_pods() -> None:
    a = deployment_pod_annotations(render(SCENARIOS["default"]))
    b = deployment_pod_annotations(render(merge(DB, {"config": {"logLevel": "debug"}})))
    c = deployment_pod_annotations(render({"database": {"url": PG_URL + "&x=1"}}))
    assert a["checksum/config"] != b["checksum/config"]
    assert a["checksum/database"] != c["checksum/database"]


def test_otel_and_extra_env_reach_the_pods() -> None:
    docs = render(SCENARIOS["everything"])
    data = config_map(docs)
    assert data["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.observability:4317"
    assert data["RAPPORT_BOOTSTRAP_TENANT"] == "true"
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in config_map(render(SCENARIOS["default"]))
    for container in [server_container(docs), pod_spec(one(docs, "Job"))["containers"][0]]:
        env = env_of(container)
        assert {"DATABASE_URL", "PGSSLROOTCERT", "OTEL_EXPORTER_OTLP_HEADERS"} <= set(env)
        assert "/etc/rapport/ca" in {m["mountPath"] for m in container["volumeMounts"]}
    assert server_container(docs)["image"] == "rapport@sha256:" + "a" * 64


def test_hpa_only_when_enabled_and_then_no_replicas_field() -> None:
    docs = render(SCENARIOS["default"])
    assert find(docs, "HorizontalPodAutoscaler") == []
    assert one(docs, "Deployment")["spec"]["replicas"] == 2

    docs = render(SCENARIOS["autoscaling"])
    hpa = one(docs, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": FULLNAME}
    assert hpa["spec"]["minReplicas"] == 2 and hpa["spec"]["maxReplicas"] == 6
    assert {m["resource"]["name"] for m in hpa["spec"]["metrics"]} == {"cpu", "memory"}
    assert "replicas" not in one(docs, "Deployment")["spec"]


def test_pod_disruption_budget() -> None:
    pdb = one(render(SCENARIOS["default"]), "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1 and "minAvailable" not in pdb["spec"]
    pdb = one(render(SCENARIOS["everything"]), "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == "50%" and "maxUnavailable" not in pdb["spec"]
    assert find(render(merge(DB, {"podDisruptionBudget": {"enabled": False}})), "PodDisruptionBudget") == []


def test_rolling_update_never_drops_below_desired() -> None:
    strategy = one(render(SCENARIOS["default"]), "Deployment")["spec"]["strategy"]
    assert strategy == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}


def test_demo_mode_is_a_single_sqlite_pod_on_a_pvc() -> None:
    docs = render(merge(SCENARIOS["demo"], {"autoscaling": {"enabled": True}, "replicaCount": 5}))
    deployment = one(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    container = server_container(docs)
    assert env_of(container)["DATABASE_URL"] == {"name": "DATABASE_URL", "value": "sqlite:///data/rapport.db?mode=rwc"}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
    pvc = one(docs, "PersistentVolumeClaim")
    assert volumes[mounts["/data"]]["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    assert pvc["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert annotations(pvc)["helm.sh/resource-policy"] == "keep"
    assert pod_spec(deployment)["securityContext"]["fsGroup"] == UID
    for kind in ("HorizontalPodAutoscaler", "Job", "Secret", "PodDisruptionBudget"):
        assert find(docs, kind) == [], kind
    assert config_map(docs)["RAPPORT_MIGRATE_ON_START"] == "true"


def test_ingress_targets_the_http_gateway() -> None:
    docs = render(SCENARIOS["ingress"])
    ingress = one(docs, "Ingress")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    (rule,) = ingress["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    assert path["backend"]["service"] == {"name": FULLNAME, "port": {"name": "http"}}
    assert ingress["spec"]["tls"] == [{"secretName": "rapport-tls", "hosts": ["rapport.example.com"]}]


def test_network_policy_opens_only_the_service_ports() -> None:
    policy = one(render(SCENARIOS["network-policy"]), "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    app_rule, metrics_rule = policy["spec"]["ingress"]
    assert {p["port"] for p in app_rule["ports"]} == {"grpc", "http"}
    assert app_rule["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] == "frontend"
    assert [p["port"] for p in metrics_rule["ports"]] == ["metrics"]
    assert len(policy["spec"]["egress"]) == 1
    open_policy = one(render(SCENARIOS["everything"]), "NetworkPolicy")
    assert open_policy["spec"]["policyTypes"] == ["Ingress"]
    assert all("from" not in rule for rule in open_policy["spec"]["ingress"])


def test_service_monitor_scrapes_the_metrics_port() -> None:
    docs = render(SCENARIOS["service-monitor"])
    monitor = one(docs, "ServiceMonitor")
    check_service_monitor(monitor, docs)
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    pod_ann = deployment_pod_annotations(docs)
    assert pod_ann["prometheus.io/scrape"] == "true" and pod_ann["prometheus.io/port"] == "9464"
    assert one(render(SCENARIOS["everything"]), "ServiceMonitor")["metadata"]["namespace"] == "monitoring"
    assert find(render(SCENARIOS["default"]), "ServiceMonitor") == []


# --------------------------------------------------------------------------- notes, metadata, docs


def test_notes_tell_how_to_connect_and_get_a_key() -> None:
    notes = render_files(SCENARIOS["default"])["rapport/templates/NOTES.txt"]
    assert f"port-forward svc/{FULLNAME} 50051:50051" in notes
    assert "grpcurl -plaintext localhost:50051" in notes
    assert f"exec deploy/{FULLNAME} -- rapport tenant create acme" in notes
    demo_notes = render_files(SCENARIOS["demo"])["rapport/templates/NOTES.txt"]
    assert "DEMO MODE" in demo_notes


def test_chart_metadata_matches_the_crate() -> None:
    meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert meta["apiVersion"] == "v2"
    assert meta["name"] == "rapport"
    assert meta["version"] == "0.1.0"
    assert meta["appVersion"] == "0.1.0"
    cargo = REPO / "Cargo.toml"
    if cargo.exists():
        package = re.search(r'^\[package\][^\[]*?^version\s*=\s*"([^"]+)"', cargo.read_text(), re.M | re.S)
        assert package and package.group(1) == meta["appVersion"]


# Values whose children are plain Kubernetes objects (or example lists): the parent
# carries the comment and the README row.
OPAQUE = {
    "podSecurityContext", "securityContext", "resources", "migrations.resources",
    "updateStrategy", "ingress.hosts", "demo.persistence.accessModes",
}


def value_paths(tree: dict[str, Any], prefix: str = "") -> list[str]:
    paths = []
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and path not in OPAQUE:
            paths.extend(value_paths(value, path + "."))
        else:
            paths.append(path)
    return paths


def test_every_value_has_a_comment() -> None:
    lines = (CHART / "values.yaml").read_text().splitlines()
    stack: list[tuple[int, str]] = []
    undocumented = []
    for index, line in enumerate(lines):
        match = re.match(r"^(\s*)([A-Za-z][\w-]*):", line)
        if not match:
            continue
        indent, key = len(match.group(1)), match.group(2)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = ".".join([k for _, k in stack] + [key])
        stack.append((indent, key))
        if any(path.startswith(o + ".") for o in OPAQUE):
            continue
        previous = lines[index - 1].strip() if index else ""
        if not previous.startswith("#") and "#" not in line:
            undocumented.append(path)
    assert undocumented == []


def test_every_value_is_in_the_readme_table() -> None:
    # The chart's values table: the "### Values" part of "## Deploy on Kubernetes".
    text = README.read_text()
    section = text[text.index("## Deploy on Kubernetes") :]
    section = section[section.index("### Values") :]
    readme = section.split("\n## ", 1)[0]
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    rows = set(re.findall(r"^\|\s*`([^`]+)`\s*\|", readme, re.M))
    missing = [p for p in value_paths(values) if p not in rows]
    assert missing == []
    unknown = []
    for row in rows:
        node: Any = values
        for part in row.split("."):
            if not isinstance(node, dict) or part not in node:
                unknown.append(row)
                break
            node = node[part]
    assert unknown == []
