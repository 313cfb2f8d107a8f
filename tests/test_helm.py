"""The Helm chart, rendered by the real Helm library and checked against Kubernetes' schemas.

helm-python-sdk embeds Helm v4 (`lint`, `Chart.render`, which also applies values.schema.json);
kubernetes-validate checks every rendered object offline and strictly (unknown fields fail)
against the oldest Kubernetes the chart supports and the newest the library bundles. Custom
resources (Strimzi KafkaTopic, Prometheus Operator ServiceMonitor/PrometheusRule) have no bundled
schema: their structure is asserted here instead. The chart's env variables are checked against
the settings classes the CLI knows, so the chart follows the services as they grow.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import helm_python
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version
from pydantic_settings import BaseSettings

from blocwatch.cli import SETTINGS_CLASSES
from blocwatch.core.metrics import OpsServer, new_registry
from blocwatch.core.settings import KafkaSettings, env_name
from blocwatch.core.topics import Topics

from .conftest import REPO

CHART = REPO / "helm" / "blocwatch"
CI_VALUES = sorted(CHART.glob("ci/*-values.yaml"))
SERVICES = ("collector", "processor", "alerter")
# The ports agreed for the services; the settings classes' defaults win once they exist.
AGREED_PORTS = {"collector": 9401, "processor": 9402, "alerter": 9403, "console": 9404}
COMMANDS = {
    "collector": "collect",
    "processor": "process",
    "alerter": "alert",
    "console": "console",
}
# The chart's kubeVersion floor (Chart.yaml) and the newest schemas kubernetes-validate bundles.
KUBE_VERSIONS = ("1.25.0", latest_version())
WORKLOADS = ("Deployment", "StatefulSet", "Job")
CUSTOM_KINDS = {"KafkaTopic", "ServiceMonitor", "PrometheusRule"}

Manifest = dict[str, Any]


# --- rendering ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chart() -> Iterator[helm_python.Chart]:
    helm_python.disable_logging()  # the Go library logs template `fail`s to stderr
    with helm_python.Chart.load(CHART) as loaded:
        yield loaded


_RENDERED: dict[tuple[int, str], list[Manifest]] = {}


def render(chart: helm_python.Chart, values: dict[str, Any] | None = None) -> list[Manifest]:
    """Every object the chart renders for `values` (NOTES.txt left out); a fresh copy each call."""
    key = (id(chart), json.dumps(values or {}, sort_keys=True))
    if key not in _RENDERED:
        rendered = chart.render(values or {}, name="bw", namespace="news")
        _RENDERED[key] = [
            doc
            for path, text in sorted(rendered.items())
            if not path.endswith("NOTES.txt")
            for doc in yaml.safe_load_all(text)
            if doc
        ]
    return copy.deepcopy(_RENDERED[key])


def ci_values(path: Path) -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load(path.read_text()) or {}
    return values


VALUE_SETS = [pytest.param({}, id="defaults")] + [
    pytest.param(ci_values(path), id=path.name) for path in CI_VALUES
]


def of_kind(objects: list[Manifest], kind: str) -> list[Manifest]:
    return [obj for obj in objects if obj["kind"] == kind]


def component(obj: Manifest) -> str:
    return str(obj["metadata"]["labels"].get("app.kubernetes.io/component", ""))


def pod_spec(workload: Manifest) -> Manifest:
    spec: Manifest = workload["spec"]["template"]["spec"]
    return spec


def workload_of(objects: list[Manifest], name: str) -> Manifest:
    (found,) = [
        obj
        for obj in of_kind(objects, "Deployment") + of_kind(objects, "StatefulSet")
        if component(obj) == name
    ]
    return found


def containers(objects: list[Manifest]) -> Iterator[tuple[str, Manifest]]:
    for kind in WORKLOADS:
        for workload in of_kind(objects, kind):
            for container in pod_spec(workload)["containers"]:
                yield component(workload), container


def env_of(container: Manifest) -> dict[str, Manifest]:
    return {entry["name"]: entry for entry in container.get("env", [])}


# --- chart metadata, lint ----------------------------------------------------------------------


def test_ci_values_cover_minimal_and_everything() -> None:
    names = {path.name for path in CI_VALUES}
    assert {"minimal-values.yaml", "full-values.yaml"} <= names


def test_app_version_is_the_package_version() -> None:
    package = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    metadata = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert metadata["apiVersion"] == "v2"
    assert metadata["appVersion"] == package


@pytest.mark.parametrize("values", VALUE_SETS)
def test_lint_has_no_warnings_or_errors(values: dict[str, Any]) -> None:
    report = helm_python.lint(CHART, values, strict=True, namespace="news")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not report["errors"], report["errors"]
    assert not problems, problems


def test_every_value_is_commented() -> None:
    """Each value has a comment right above it, or sits in a block documented as a whole by a
    `# --` comment (literal defaults such as resources or securityContext)."""
    undocumented = []
    stack: list[tuple[int, bool]] = []  # (indent, "# --" block) of the enclosing keys
    comment: list[str] = []  # the comment lines right above the current line
    for line in (CHART / "values.yaml").read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            comment.append(stripped)
            continue
        match = re.match(r"^(\s*)([A-Za-z][\w.-]*):(.*)$", line)
        if match:
            indent = len(match.group(1))
            while stack and stack[-1][0] >= indent:
                stack.pop()
            is_leaf = match.group(3).strip() != ""
            if is_leaf and not comment and not any(block for _, block in stack):
                undocumented.append(stripped)
            stack.append((indent, bool(comment) and comment[0].startswith("# --")))
        if stripped:
            comment = []
    assert not undocumented, f"values.yaml keys without a comment: {undocumented}"


# --- Kubernetes schemas ------------------------------------------------------------------------


def check_custom_resource(obj: Manifest) -> None:
    """The structure of objects whose CRD schema kubernetes-validate does not bundle."""
    assert obj["metadata"]["name"]
    spec = obj["spec"]
    if obj["kind"] == "KafkaTopic":
        assert obj["apiVersion"] == "kafka.strimzi.io/v1beta2"
        assert obj["metadata"]["labels"]["strimzi.io/cluster"]
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", obj["metadata"]["name"])
        assert isinstance(spec["topicName"], str)
        assert spec["topicName"]
        assert isinstance(spec["partitions"], int)
        assert spec["partitions"] >= 1
        assert isinstance(spec["replicas"], int)
        assert spec["replicas"] >= 1
        assert isinstance(spec["config"], dict)
    elif obj["kind"] == "ServiceMonitor":
        assert obj["apiVersion"] == "monitoring.coreos.com/v1"
        assert spec["selector"]["matchLabels"]
        for endpoint in spec["endpoints"]:
            assert endpoint["port"] == "metrics"
            assert endpoint["path"] == "/metrics"
    elif obj["kind"] == "PrometheusRule":
        assert obj["apiVersion"] == "monitoring.coreos.com/v1"
        for group in spec["groups"]:
            assert group["name"]
            assert group["rules"]
            for rule in group["rules"]:
                assert ("alert" in rule) != ("record" in rule)
                assert isinstance(rule["expr"], str | int)
                assert str(rule["expr"]).strip()


@pytest.mark.parametrize("values", VALUE_SETS)
def test_rendered_objects_are_valid_kubernetes(
    chart: helm_python.Chart, values: dict[str, Any]
) -> None:
    objects = render(chart, values)
    assert of_kind(objects, "Deployment"), "nothing rendered"
    for obj in objects:
        if obj["kind"] in CUSTOM_KINDS:
            check_custom_resource(obj)
            continue
        for version in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                where = ".".join(str(part) for part in exc.path)
                pytest.fail(
                    f"{obj['kind']}/{obj['metadata']['name']} on {version}: {where}: {exc.message}"
                )


def test_strict_validation_rejects_unknown_fields(chart: helm_python.Chart) -> None:
    """Guards the guard: strict schemas really fail on a misspelt field."""
    deployment = of_kind(render(chart), "Deployment")[0]
    pod_spec(deployment)["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBE_VERSIONS[0], strict=True)


@pytest.mark.parametrize("values", VALUE_SETS)
def test_names_are_unique_per_kind(chart: helm_python.Chart, values: dict[str, Any]) -> None:
    keys = [(obj["kind"], obj["metadata"]["name"]) for obj in render(chart, values)]
    assert len(keys) == len(set(keys))


# --- values.schema.json ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"replicaCount": 2}, "additional properties"),
        ({"collector": {"replicas": 2}}, "/collector/replicas"),
        ({"alerter": {"replicas": 2}}, "/alerter/replicas"),
        ({"processor": {"replicas": "two"}}, "/processor/replicas"),
        ({"processor": {"metricsPort": 70000}}, "/processor/metricsPort"),
        ({"kafka": {"bootstrapServers": ""}}, "/kafka/bootstrapServers"),
        ({"kafka": {"bootstrapServers": "kafka"}}, "/kafka/bootstrapServers"),
        ({"kafka": {"securityProtocol": "TLS"}}, "/kafka/securityProtocol"),
        ({"kafka": {"sasl": {"mechanism": "GSSAPI"}}}, "/kafka/sasl/mechanism"),
        ({"kafka": {"securityProtocol": "SASL_SSL"}}, "/kafka/sasl/mechanism"),
        ({"topics": {"partitions": 0}}, "/topics/partitions"),
        ({"topics": {"prefix": "prod/"}}, "/topics/prefix"),
        ({"collector": {"env": {"FEEDS": "x"}}}, "'FEEDS' does not match"),
        ({"alerter": {"extraEnv": [{"value": "x"}]}}, "/alerter/extraEnv"),
        ({"securityContext": {"allowPrivilegeEscalation": True}}, "/securityContext"),
        ({"podSecurityContext": {"runAsNonRoot": False}}, "/podSecurityContext"),
        ({"logLevel": "verbose"}, "/logLevel"),
        ({"serviceMonitor": {"interval": "often"}}, "/serviceMonitor/interval"),
        ({"strimzi": {"clusterName": "My_Cluster"}}, "/strimzi/clusterName"),
        ({"console": {"auth": {"mode": "basic"}}}, "/console/auth/existingSecret"),
        ({"console": {"auth": {"mode": "oauth"}}}, "/console/auth/mode"),
    ],
)
def test_schema_rejects_wrong_values(
    chart: helm_python.Chart, values: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(helm_python.HelmValuesError, match=re.escape(complaint)):
        chart.render(values, name="bw", namespace="news")


def test_extra_env_cannot_shadow_a_chart_setting(chart: helm_python.Chart) -> None:
    shadow = {"processor": {"extraEnv": [{"name": "BLOCWATCH_LOG_LEVEL", "value": "DEBUG"}]}}
    with pytest.raises(helm_python.HelmRenderError, match=r"override it in processor\.env"):
        render(chart, shadow)


def test_processor_cannot_scale_past_the_partitions(chart: helm_python.Chart) -> None:
    def autoscaled(most: int) -> dict[str, Any]:
        scaling = {"enabled": True, "maxReplicas": most}
        return {"topics": {"partitions": 4}, "processor": {"autoscaling": scaling}}

    with pytest.raises(helm_python.HelmRenderError, match=r"must not exceed topics\.partitions"):
        render(chart, autoscaled(5))
    fixed = {"topics": {"partitions": 2}, "processor": {"replicas": 3}}
    with pytest.raises(helm_python.HelmRenderError, match=r"must not exceed topics\.partitions"):
        render(chart, fixed)
    objects = render(chart, autoscaled(4))
    (hpa,) = of_kind(objects, "HorizontalPodAutoscaler")
    assert hpa["spec"]["maxReplicas"] == 4
    assert "replicas" not in workload_of(objects, "processor")["spec"]


# --- env variables are the settings ------------------------------------------------------------


def settings_class_of(service: str) -> type[BaseSettings] | None:
    """The settings class of a service: the one owning `<service>_metrics_port`."""
    for cls in SETTINGS_CLASSES:
        if f"{service}_metrics_port" in cls.model_fields:
            return cls
    return None


def settings_names(cls: type[BaseSettings]) -> set[str]:
    return {env_name(field) for field in cls.model_fields}


@pytest.mark.parametrize("values", VALUE_SETS)
def test_env_variables_are_settings_fields(
    chart: helm_python.Chart, values: dict[str, Any]
) -> None:
    """Every variable a container gets is a field of its service's settings class, once."""
    shared = settings_names(KafkaSettings)
    known = set().union(*(settings_names(cls) for cls in SETTINGS_CLASSES))
    for name, container in containers(render(chart, values)):
        names = [entry["name"] for entry in container["env"]]
        assert len(names) == len(set(names)), f"{name}: duplicate env {names}"
        if name == "topics":
            assert set(names) <= shared, set(names) - shared
            continue
        cls = settings_class_of(name)
        if cls is None:
            # Service not merged yet: check what can be checked, its own names must wait.
            own = f"BLOCWATCH_{name.upper()}_"
            assert {n for n in names if not n.startswith(own)} <= known | {"BLOCWATCH_METRICS_HOST"}
            continue
        assert set(names) <= settings_names(cls), set(names) - settings_names(cls)


def test_every_service_has_a_settings_class_or_is_reported() -> None:
    missing = [service for service in SERVICES if settings_class_of(service) is None]
    if missing:
        pytest.skip(f"no settings class yet for {missing}: their own env names are unchecked")


@pytest.mark.parametrize("values", VALUE_SETS)
def test_kafka_and_topic_settings_follow_values(
    chart: helm_python.Chart, values: dict[str, Any]
) -> None:
    merged = chart.merge_values(values)
    for name, container in containers(render(chart, values)):
        env = env_of(container)
        assert env["BLOCWATCH_TOPIC_PREFIX"]["value"] == merged["topics"]["prefix"], name
        assert env["BLOCWATCH_TOPIC_PARTITIONS"]["value"] == str(merged["topics"]["partitions"])
        assert (
            env["BLOCWATCH_KAFKA_SECURITY_PROTOCOL"]["value"] == merged["kafka"]["securityProtocol"]
        )
        # What the chart sets must load into the real settings class.
        plain = {k: v["value"] for k, v in env.items() if "value" in v}
        fields = {k.removeprefix("BLOCWATCH_").lower(): v for k, v in plain.items()}
        settings = KafkaSettings(
            **{k: v for k, v in fields.items() if k in KafkaSettings.model_fields}
        )
        assert settings.topics.news_raw == merged["topics"]["prefix"] + "news.raw"


def test_secrets_are_references_never_values(chart: helm_python.Chart) -> None:
    objects = render(chart, ci_values(CHART / "ci" / "full-values.yaml"))
    assert not of_kind(objects, "Secret"), "the chart never holds secrets itself"
    secret_names = {
        "BLOCWATCH_KAFKA_SASL_PASSWORD": "blocwatch",
        "BLOCWATCH_ALERTER_WEBHOOK_URLS": "blocwatch-receivers",
        "BLOCWATCH_ALERTER_WEBHOOK_SECRET": "blocwatch-receivers",
        "BLOCWATCH_ALERTER_APPRISE_URLS": "blocwatch-receivers",
        "BLOCWATCH_CONSOLE_PASSWORD": "blocwatch-console",
    }
    seen = set()
    for name, container in containers(objects):
        for variable, entry in env_of(container).items():
            if variable in secret_names:
                assert "value" not in entry, f"{name}: {variable} in plain text"
                assert entry["valueFrom"]["secretKeyRef"]["name"] == secret_names[variable]
                seen.add(variable)
        if name != "alerter":
            assert not {v for v in env_of(container) if v.startswith("BLOCWATCH_ALERTER_")}
    assert seen == set(secret_names)


def test_tls_files_are_mounted_where_the_settings_point(chart: helm_python.Chart) -> None:
    objects = render(chart, ci_values(CHART / "ci" / "tls-values.yaml"))
    for _, container in containers(objects):
        env = env_of(container)
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert env["BLOCWATCH_KAFKA_SSL_CAFILE"]["value"] == f"{mounts['kafka-ca']}/ca.crt"
        assert env["BLOCWATCH_KAFKA_SSL_CERTFILE"]["value"] == f"{mounts['kafka-client']}/tls.crt"
        assert env["BLOCWATCH_KAFKA_SSL_KEYFILE"]["value"] == f"{mounts['kafka-client']}/tls.key"


# --- workloads: probes, ports, commands, security ----------------------------------------------


def metrics_port_of(service: str) -> int:
    cls = settings_class_of(service)
    if cls is None:
        return AGREED_PORTS[service]
    default = cls.model_fields[f"{service}_metrics_port"].default
    assert isinstance(default, int)
    return default


@pytest.mark.parametrize("values", VALUE_SETS)
def test_workloads_run_their_command_on_their_port(
    chart: helm_python.Chart, values: dict[str, Any]
) -> None:
    objects = render(chart, values)
    services = {component(svc): svc for svc in of_kind(objects, "Service")}
    for name, container in containers(objects):
        if name == "topics":
            assert container["args"] == ["topics", "create"]
            continue
        port = metrics_port_of(name)
        assert container["command"] == ["blocwatch"]
        assert container["args"] == [COMMANDS[name]]
        assert container["ports"][0] == {
            "name": "metrics",
            "containerPort": port,
            "protocol": "TCP",
        }
        if name == "console":  # the web page has its own port
            (web,) = container["ports"][1:]
            assert str(web["containerPort"]) == env_of(container)["BLOCWATCH_CONSOLE_PORT"]["value"]
            assert web["name"] == "http"
        else:
            assert len(container["ports"]) == 1
        env = env_of(container)
        assert env[f"BLOCWATCH_{name.upper()}_METRICS_PORT"]["value"] == str(port)
        assert env["BLOCWATCH_METRICS_HOST"]["value"] == "0.0.0.0"
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
        assert services[name]["spec"]["ports"][0]["targetPort"] == "metrics"


async def test_probe_paths_are_served_by_the_services_ops_server(
    chart: helm_python.Chart,
) -> None:
    paths = set()
    for _, container in containers(render(chart)):
        for probe in ("livenessProbe", "readinessProbe"):
            if probe in container:
                paths.add(container[probe]["httpGet"]["path"])
    assert paths == {"/healthz", "/readyz"}
    async with (
        OpsServer(new_registry("helm"), "127.0.0.1", 0) as server,
        aiohttp.ClientSession() as http,
    ):
        for path in sorted(paths):
            async with http.get(f"{server.url}{path}") as response:
                assert response.status == 200, path


@pytest.mark.parametrize("values", VALUE_SETS)
def test_pods_are_restricted(chart: helm_python.Chart, values: dict[str, Any]) -> None:
    objects = render(chart, values)
    for kind in WORKLOADS:
        for workload in of_kind(objects, kind):
            spec = pod_spec(workload)
            assert spec["securityContext"]["runAsNonRoot"] is True
            assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
            assert spec["automountServiceAccountToken"] is False
            # Service links would inject BLOCWATCH_<SERVICE>_PORT-like variables.
            assert spec["enableServiceLinks"] is False
            volumes = {v["name"]: v for v in spec["volumes"]}
            for container in spec["containers"]:
                context = container["securityContext"]
                assert context["readOnlyRootFilesystem"] is True
                assert context["allowPrivilegeEscalation"] is False
                assert context["capabilities"]["drop"] == ["ALL"]
                mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
                assert "emptyDir" in volumes[mounts["/tmp"]]
                data_dir = env_of(container).get(
                    f"BLOCWATCH_{component(workload).upper()}_DATA_DIR"
                )
                if data_dir:  # writable: an emptyDir, a claim or a claim template
                    volume = volumes.get(mounts[data_dir["value"]], {})
                    assert kind == "StatefulSet" or {"emptyDir", "persistentVolumeClaim"} & set(
                        volume
                    ), volume


def test_unsharded_collector_is_one_recreated_deployment(chart: helm_python.Chart) -> None:
    collector = workload_of(render(chart), "collector")
    assert collector["kind"] == "Deployment"
    assert collector["spec"]["replicas"] == 1
    assert collector["spec"]["strategy"] == {"type": "Recreate"}


def shards_of(objects: list[Manifest]) -> dict[str, str]:
    (shards,) = [
        cm for cm in of_kind(objects, "ConfigMap") if cm["metadata"]["name"].endswith("-shards")
    ]
    data: dict[str, str] = shards["data"]
    return data


def test_sharded_collector_deals_every_enabled_feed_once(chart: helm_python.Chart) -> None:
    objects = render(chart, ci_values(CHART / "ci" / "full-values.yaml"))
    collector = workload_of(objects, "collector")
    assert collector["kind"] == "StatefulSet"
    shards = shards_of(objects)
    assert sorted(shards) == [f"feeds-{i}.yaml" for i in range(collector["spec"]["replicas"])]
    source = yaml.safe_load((CHART / "files" / "config" / "feeds.yaml").read_text())
    enabled = sorted(f["name"] for f in source["feeds"] if f.get("enabled", True) is not False)
    dealt: list[str] = []
    for text in shards.values():
        shard = yaml.safe_load(text)
        assert shard["feeds"], "every shard polls at least one feed"
        assert shard["defaults"] == source.get("defaults", {})
        dealt.extend(feed["name"] for feed in shard["feeds"])
    assert sorted(dealt) == enabled
    (claim,) = collector["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"


def test_each_collector_shard_parses_as_a_feeds_file(chart: helm_python.Chart) -> None:
    feeds = pytest.importorskip("blocwatch.collector.feeds")
    objects = render(chart, ci_values(CHART / "ci" / "full-values.yaml"))
    for key, text in shards_of(objects).items():
        assert feeds.parse_feeds(text, key)


def test_shard_init_container_copies_its_ordinals_file(
    chart: helm_python.Chart, tmp_path: Path
) -> None:
    """Runs the rendered init script with sh, its absolute paths moved under tmp_path."""
    objects = render(chart, ci_values(CHART / "ci" / "full-values.yaml"))
    spec = pod_spec(workload_of(objects, "collector"))
    (init,) = spec["initContainers"]
    script = init["command"][2].replace("/etc/blocwatch", str(tmp_path))
    for mount in init["volumeMounts"]:
        (tmp_path / Path(mount["mountPath"]).relative_to("/etc/blocwatch")).mkdir(parents=True)
    shards = shards_of(objects)
    for key, text in shards.items():
        (tmp_path / "shards" / key).write_text(text)
    feeds_file = Path(env_of(spec["containers"][0])["BLOCWATCH_COLLECTOR_FEEDS_FILE"]["value"])
    copied = tmp_path / feeds_file.relative_to("/etc/blocwatch")
    env = {"PATH": "/usr/bin:/bin", "HOSTNAME": "bw-blocwatch-collector-2"}
    subprocess.run([*init["command"][:2], script], env=env, check=True, timeout=30)
    assert copied.read_text() == shards["feeds-2.yaml"]
    # The init container writes into the emptyDir the collector then mounts read-only.
    (config,) = [v for v in spec["volumes"] if v["name"] == "config"]
    assert "emptyDir" in config


def test_sharding_needs_enough_feeds_and_readable_feeds(chart: helm_python.Chart) -> None:
    sharded: dict[str, Any] = {"collector": {"replicas": 500, "sharding": {"enabled": True}}}
    with pytest.raises(helm_python.HelmRenderError, match="exceeds the enabled feeds"):
        render(chart, sharded)
    sharded["collector"].update(replicas=2, feeds={"existingConfigMap": "my-feeds"})
    with pytest.raises(helm_python.HelmRenderError, match="cannot read"):
        render(chart, sharded)


def test_state_lives_on_kept_claims_by_default(chart: helm_python.Chart) -> None:
    objects = render(chart)
    claims = {c["metadata"]["name"]: c for c in of_kind(objects, "PersistentVolumeClaim")}
    for service in ("collector", "alerter"):
        spec = pod_spec(workload_of(objects, service))
        (data,) = [v for v in spec["volumes"] if v["name"] == "data"]
        claim = claims[data["persistentVolumeClaim"]["claimName"]]
        assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert len(claims) == 2


def test_config_files_are_mounted_where_the_settings_point(chart: helm_python.Chart) -> None:
    objects = render(chart)
    maps = {cm["metadata"]["name"]: cm for cm in of_kind(objects, "ConfigMap")}
    for service, variable, key in (
        ("collector", "BLOCWATCH_COLLECTOR_FEEDS_FILE", "feeds.yaml"),
        ("alerter", "BLOCWATCH_ALERTER_RULES_FILE", "rules.yaml"),
    ):
        spec = pod_spec(workload_of(objects, service))
        container = spec["containers"][0]
        path = Path(env_of(container)[variable]["value"])
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volume = {v["name"]: v for v in spec["volumes"]}[mounts[str(path.parent)]]
        assert volume["configMap"]["items"] == [{"key": key, "path": path.name}]
        assert key in maps[volume["configMap"]["name"]]["data"]


def test_custom_config_content_rolls_the_pods(chart: helm_python.Chart) -> None:
    def checksum(values: dict[str, Any]) -> str:
        pod = workload_of(render(chart, values), "alerter")["spec"]["template"]
        return str(pod["metadata"]["annotations"]["checksum/rules"])

    custom = {"alerter": {"rules": {"content": "rules: []\n# tuned\n"}}}
    assert checksum({}) != checksum(custom)
    maps = {cm["metadata"]["name"]: cm for cm in of_kind(render(chart, custom), "ConfigMap")}
    assert maps["bw-blocwatch-alerter"]["data"]["rules.yaml"].startswith("rules: []")


# --- Kafka topics ------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["", "prod.", "team_a-"])
def test_strimzi_topics_are_the_topic_registry(chart: helm_python.Chart, prefix: str) -> None:
    values = {"strimzi": {"enabled": True, "clusterName": "events"}, "topics": {"prefix": prefix}}
    values["kafka"] = {"bootstrapServers": ""}
    objects = render(chart, values)
    topics = of_kind(objects, "KafkaTopic")
    assert [t["spec"]["topicName"] for t in topics] == Topics(prefix).all()
    merged = chart.merge_values(values)
    for topic in topics:
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "events"
        assert topic["spec"]["partitions"] == merged["topics"]["partitions"]
        assert topic["spec"]["replicas"] == merged["topics"]["replicationFactor"]
        assert topic["spec"]["config"]["retention.ms"] == merged["topics"]["retentionMs"]
    assert not of_kind(objects, "Job"), "the Topic Operator creates topics, not the hook Job"
    for _, container in containers(objects):
        assert env_of(container)["BLOCWATCH_KAFKA_BOOTSTRAP_SERVERS"]["value"] == (
            "events-kafka-bootstrap:9092"
        )


def test_topics_job_runs_before_the_services(chart: helm_python.Chart) -> None:
    (job,) = of_kind(render(chart), "Job")
    hooks = set(job["metadata"]["annotations"]["helm.sh/hook"].split(","))
    assert hooks == {"pre-install", "pre-upgrade"}


# --- monitoring and policies -------------------------------------------------------------------


def test_service_monitor_selects_every_metrics_service(chart: helm_python.Chart) -> None:
    objects = render(chart, ci_values(CHART / "ci" / "full-values.yaml"))
    (monitor,) = of_kind(objects, "ServiceMonitor")
    selector = monitor["spec"]["selector"]["matchLabels"]
    selected = [
        svc
        for svc in of_kind(objects, "Service")
        if selector.items() <= svc["metadata"]["labels"].items()
    ]
    assert {component(svc) for svc in selected} == {*SERVICES, "console"}
    assert all(svc["spec"]["ports"][0]["name"] == "metrics" for svc in selected)
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_network_policies_allow_only_dns_kafka_and_the_web(chart: helm_python.Chart) -> None:
    objects = render(chart, ci_values(CHART / "ci" / "full-values.yaml"))
    policies = {component(p): p for p in of_kind(objects, "NetworkPolicy")}
    assert set(policies) == {*SERVICES, "console"}
    for name, policy in policies.items():
        egress_ports = {
            (port["port"], port["protocol"])
            for rule in policy["spec"]["egress"]
            for port in rule["ports"]
        }
        expected = {(53, "UDP"), (53, "TCP"), (9093, "TCP")}
        if name in ("collector", "alerter"):  # feeds and receivers live on the web
            expected |= {(80, "TCP"), (443, "TCP")}
            (web,) = [r for r in policy["spec"]["egress"] if "ipBlock" in r.get("to", [{}])[0]]
            assert "10.0.0.0/8" in web["to"][0]["ipBlock"]["except"]
        assert egress_ports == expected, name
        ingress_ports = [rule["ports"] for rule in policy["spec"]["ingress"]]
        expected_in = [[{"port": "metrics", "protocol": "TCP"}]]
        if name == "console":  # and its web page, from the ingress controller only
            expected_in.append([{"port": "http", "protocol": "TCP"}])
            assert policy["spec"]["ingress"][1]["from"][0]["namespaceSelector"]
        assert ingress_ports == expected_in, name


def test_pod_disruption_budgets_select_their_pods(chart: helm_python.Chart) -> None:
    objects = render(chart, ci_values(CHART / "ci" / "full-values.yaml"))
    for pdb in of_kind(objects, "PodDisruptionBudget"):
        workload = workload_of(objects, component(pdb))
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_notes_tell_where_the_metrics_are(chart: helm_python.Chart) -> None:
    notes = chart.render({}, name="bw", namespace="news")["blocwatch/templates/NOTES.txt"]
    for service in SERVICES:
        assert f"service/bw-blocwatch-{service} port {metrics_port_of(service)}" in notes
    assert "port-forward" in notes
