"""What the Kubernetes API server rejects beyond a manifest's schema, checked offline.

``deploy --dry-run`` validates every rendered manifest against the OpenAPI
schema of the oldest and newest Kubernetes release (``deploy.validate_manifests``);
``check_rules`` then applies the rules from Kubernetes' own validation code for
the kinds the chart renders (``pkg/apis/{apps,core,networking,policy,rbac,
autoscaling,admissionregistration}/validation``): a ``rollingUpdate`` beside
``type: Recreate``, a selector that does not match the pod labels, port names,
env var names, HPA bounds, PDB fields, RBAC rules and subjects and more: what the
values can break.  What only the chart's own templates decide (port names, role
references, the namespace guard's admission policy) is judged by the real API server
in tests/test_chart_cluster.py instead.  tests/test_kube_rules_server.py gives most rules
kept here the same mutated manifest as a real kube-apiserver, which refuses it too;
docs/chart.md names the rules it does not cover yet.  Each problem is one line naming
the manifest and the field.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    from coderbundle.deploy import Manifest

__all__ = ["check_rules"]

# apimachinery's util/validation; the checks use the strictest form across the versions checked.
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_ENV_VAR_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")  # before 1.30's relaxed names
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_IANA_SVC_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_PERCENT = re.compile(r"^([0-9]+)%$")
_QUANTITY = re.compile(r"^([0-9.]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_SUFFIX = {
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}
# Names whose kinds use a DNS-1035 label (Service) or a DNS-1123 label (Namespace); the rest
# (ConfigMap, Secret, Deployment, RBAC, policies, …) a DNS-1123 subdomain (RBAC: path segment).
_NAME_RULE = {
    "Service": ("DNS-1035 label", _DNS1035_LABEL, 63),
    "Namespace": ("DNS-1123 label", _DNS1123_LABEL, 63),
}
_RBAC_KINDS = {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}
_POD_SPEC_PATHS = {"Deployment": ("spec", "template", "spec"), "Pod": ("spec",)}


def _get(body: Mapping[str, Any], *path: str) -> Any:
    node: Any = body
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def _qualified_key(key: str) -> str | None:
    """Why ``key`` is not a valid label/annotation key, or None."""
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS1123_SUBDOMAIN.match(prefix)):
        return "prefix must be a DNS-1123 subdomain"
    if not name or len(name) > 63 or not _QUALIFIED_NAME.match(name):
        return "name part must be 1-63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric"
    return None


def _port_name(name: str) -> str | None:
    """Why ``name`` is not an IANA_SVC_NAME (container and target port names), or None."""
    if len(name) > 15:
        return "must be no more than 15 characters"
    if not _IANA_SVC_NAME.match(name) or "--" in name:
        return "must be lowercase alphanumerics and '-', no '--', starting and ending alphanumeric"
    if not re.search(r"[a-z]", name):
        return "must contain at least one letter"
    return None


def _int_or_percent(value: Any) -> tuple[int, bool] | None:
    """(number, is_percent) of an IntOrString, or None when malformed."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value, False
    m = _PERCENT.match(str(value))
    return (int(m[1]), True) if m else None


def _quantity(value: Any) -> float | None:
    m = _QUANTITY.match(str(value))
    if not m:
        return None
    try:
        return float(m[1]) * _SUFFIX.get(m[2] or "", 1)
    except ValueError:
        return None


def _check_metadata(body: Mapping[str, Any]) -> list[str]:
    kind = str(body.get("kind"))
    meta = body.get("metadata") or {}
    out: list[str] = []
    name = str(meta.get("name") or "")
    what, pattern, limit = _NAME_RULE.get(kind, ("DNS-1123 subdomain", _DNS1123_SUBDOMAIN, 253))
    if kind in _RBAC_KINDS:
        if not name or name in {".", ".."} or "/" in name or "%" in name:
            out.append(f"metadata.name {name!r}: must be a path segment name")
    elif len(name) > limit or not pattern.match(name):
        out.append(f"metadata.name {name!r}: must be a {what} of at most {limit} characters")
    namespace = meta.get("namespace")
    if namespace is not None and (len(str(namespace)) > 63 or not _DNS1123_LABEL.match(str(namespace))):
        out.append(f"metadata.namespace {namespace!r}: must be a DNS-1123 label")
    out += _check_labels(meta.get("labels") or {}, "metadata.labels")
    for key in meta.get("annotations") or {}:
        if why := _qualified_key(str(key)):
            out.append(f"metadata.annotations {key!r}: {why}")
    size = sum(len(str(k)) + len(str(v)) for k, v in (meta.get("annotations") or {}).items())
    if size > 256 * 1024:
        out.append("metadata.annotations: total size must be at most 256 KiB")
    return out


def _check_labels(labels: Mapping[str, Any], where: str) -> list[str]:
    out: list[str] = []
    for key, value in labels.items():
        if why := _qualified_key(str(key)):
            out.append(f"{where} {key!r}: {why}")
        if value is None or len(str(value)) > 63 or not _LABEL_VALUE.match(str(value)):
            out.append(f"{where} {key!r}: value {value!r} must be at most 63 alphanumerics, '-', '_' or '.'")
    return out


def _selector_matches(selector: Mapping[str, Any], labels: Mapping[str, Any]) -> bool:
    for key, value in (selector.get("matchLabels") or {}).items():
        if str(labels.get(key)) != str(value):
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), [str(v) for v in expr.get("values") or []]
        present = key in labels
        if (op == "In" and str(labels.get(key)) not in values) or (
            op == "NotIn" and present and str(labels[key]) in values
        ):
            return False
        if (op == "Exists" and not present) or (op == "DoesNotExist" and present):
            return False
    return True


def _check_selector(selector: Any, where: str) -> list[str]:
    if not isinstance(selector, Mapping):
        return []
    out = _check_labels(selector.get("matchLabels") or {}, f"{where}.matchLabels")
    for i, expr in enumerate(selector.get("matchExpressions") or []):
        op, values = expr.get("operator"), expr.get("values") or []
        if op in {"In", "NotIn"} and not values:
            out.append(f"{where}.matchExpressions[{i}]: operator {op} needs values")
        if op in {"Exists", "DoesNotExist"} and values:
            out.append(f"{where}.matchExpressions[{i}]: operator {op} takes no values")
    return out


def _check_ports(c: Mapping[str, Any], where: str) -> tuple[list[str], set[str]]:
    # Port names are the chart's own (the real-server install tests judge them); the
    # numbers come from the values.
    out: list[str] = []
    names = {str(port["name"]) for port in c.get("ports") or [] if port.get("name")}
    for i, port in enumerate(c.get("ports") or []):
        if not 1 <= int(port.get("containerPort", 0)) <= 65535:
            out.append(f"{where}.ports[{i}].containerPort: must be between 1 and 65535")
    return out, names


def _check_env(c: Mapping[str, Any], where: str) -> list[str]:
    out: list[str] = []
    for i, env in enumerate(c.get("env") or []):
        if not _ENV_VAR_NAME.match(str(env.get("name", ""))):
            out.append(
                f"{where}.env[{i}].name {env.get('name')!r}: must be a valid environment variable name"
            )
        if "value" in env and "valueFrom" in env:
            out.append(f"{where}.env[{i}]: may not have both value and valueFrom")
    return out


def _check_mounts(c: Mapping[str, Any], where: str, volumes: set[str]) -> list[str]:
    out: list[str] = []
    paths: set[str] = set()
    for i, mount in enumerate(c.get("volumeMounts") or []):
        if mount.get("name") not in volumes:
            out.append(
                f"{where}.volumeMounts[{i}].name {mount.get('name')!r}: not found in the pod's volumes"
            )
        path = str(mount.get("mountPath", ""))
        if path in paths:
            out.append(f"{where}.volumeMounts[{i}].mountPath {path!r}: must be unique")
        paths.add(path)
        sub = str(mount.get("subPath", ""))
        if sub.startswith("/") or ".." in sub.split("/"):
            out.append(f"{where}.volumeMounts[{i}].subPath {sub!r}: must be a relative path without '..'")
    return out


def _check_container(c: Mapping[str, Any], where: str, volumes: set[str]) -> list[str]:
    out, names = _check_ports(c, where)
    out += _check_env(c, where) + _check_mounts(c, where, volumes)
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        port = _get(c, probe, "httpGet", "port")
        if isinstance(port, str) and (why := _port_name(port)):
            out.append(f"{where}.{probe}.httpGet.port {port!r}: {why}")
        elif isinstance(port, str) and port not in names:
            out.append(f"{where}.{probe}.httpGet.port {port!r}: no container port has this name")
    requests, limits = _get(c, "resources", "requests") or {}, _get(c, "resources", "limits") or {}
    for res, want in requests.items():
        req, lim = _quantity(want), _quantity(limits.get(res, ""))
        if req is not None and lim is not None and req > lim:
            out.append(f"{where}.resources.requests.{res}: must be less than or equal to the {res} limit")
    return out


def _check_pod_spec(spec: Mapping[str, Any], where: str) -> list[str]:
    out: list[str] = []
    volumes: set[str] = set()
    for i, vol in enumerate(spec.get("volumes") or []):
        name = str(vol.get("name", ""))
        if len(name) > 63 or not _DNS1123_LABEL.match(name):
            out.append(f"{where}.volumes[{i}].name {name!r}: must be a DNS-1123 label")
        elif name in volumes:
            out.append(f"{where}.volumes[{i}].name {name!r}: duplicate")
        volumes.add(name)
        sources = [k for k in vol if k != "name"]
        if len(sources) != 1:
            out.append(f"{where}.volumes[{i}]: must have exactly one volume source, not {sources}")
    containers: set[str] = set()
    for field_name in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(field_name) or []):
            name = str(c.get("name", ""))
            if not _DNS1123_LABEL.match(name) or len(name) > 63:
                out.append(f"{where}.{field_name}[{i}].name {name!r}: must be a DNS-1123 label")
            elif name in containers:
                out.append(f"{where}.{field_name}[{i}].name {name!r}: duplicate")
            containers.add(name)
            out += _check_container(c, f"{where}.{field_name}[{i}]", volumes)
    return out


def _check_strategy(strategy: Mapping[str, Any]) -> list[str]:
    kind = strategy.get("type", "RollingUpdate")
    if kind == "Recreate":
        if "rollingUpdate" in strategy:
            return ["spec.strategy.rollingUpdate: may not be specified when strategy `type` is 'Recreate'"]
        return []
    if kind != "RollingUpdate":
        return [f"spec.strategy.type {kind!r}: must be Recreate or RollingUpdate"]
    ru = strategy.get("rollingUpdate") or {}
    surge = _int_or_percent(ru.get("maxSurge", "25%"))
    unavailable = _int_or_percent(ru.get("maxUnavailable", "25%"))
    if surge is None or unavailable is None:
        return ["spec.strategy.rollingUpdate: maxSurge and maxUnavailable must be an integer or a percentage"]
    out: list[str] = []
    if surge[0] < 0 or unavailable[0] < 0:
        out.append("spec.strategy.rollingUpdate: maxSurge and maxUnavailable must be non-negative")
    if surge[0] == 0 and unavailable[0] == 0:
        out.append("spec.strategy.rollingUpdate.maxUnavailable: may not be 0 when maxSurge is 0")
    if unavailable[1] and unavailable[0] > 100:
        out.append("spec.strategy.rollingUpdate.maxUnavailable: must not be greater than 100%")
    return out


def _check_deployment(body: Mapping[str, Any]) -> list[str]:
    spec = body.get("spec") or {}
    out = _check_strategy(spec.get("strategy") or {})
    selector = spec.get("selector") or {}
    labels = _get(spec, "template", "metadata", "labels") or {}
    if not (selector.get("matchLabels") or selector.get("matchExpressions")):
        out.append("spec.selector: empty selector is invalid for deployment")
    elif not _selector_matches(selector, labels):
        out.append("spec.template.metadata.labels: `selector` does not match template `labels`")
    out += _check_selector(selector, "spec.selector")
    out += _check_labels(labels, "spec.template.metadata.labels")
    out.extend(
        f"spec.template.metadata.annotations {key!r}: {why}"
        for key in _get(spec, "template", "metadata", "annotations") or {}
        if (why := _qualified_key(str(key)))
    )
    out.extend(
        f"spec.{name}: must be greater than or equal to 0"
        for name in ("replicas", "revisionHistoryLimit", "minReadySeconds")
        if int(spec.get(name, 0)) < 0
    )
    if "progressDeadlineSeconds" in spec and int(spec["progressDeadlineSeconds"]) <= int(
        spec.get("minReadySeconds", 0)
    ):
        out.append("spec.progressDeadlineSeconds: must be greater than minReadySeconds")
    restart = _get(spec, "template", "spec", "restartPolicy")
    if restart not in {None, "Always"}:
        out.append(f"spec.template.spec.restartPolicy {restart!r}: must be Always")
    return out


def _check_service(body: Mapping[str, Any]) -> list[str]:
    spec = body.get("spec") or {}
    ports = spec.get("ports") or []
    out: list[str] = []
    # Service port names are the chart's own (judged by the real-server install tests).
    for i, port in enumerate(ports):
        if not 1 <= int(port.get("port", 0)) <= 65535:
            out.append(f"spec.ports[{i}].port: must be between 1 and 65535")
        target = port.get("targetPort")
        if isinstance(target, str) and (why := _port_name(target)):
            out.append(f"spec.ports[{i}].targetPort {target!r}: {why}")
    if spec.get("clusterIP") == "None" and spec.get("type", "ClusterIP") != "ClusterIP":
        out.append("spec.clusterIP: None (headless) requires type ClusterIP")
    return out


def _check_ingress(body: Mapping[str, Any]) -> list[str]:
    spec = body.get("spec") or {}
    out: list[str] = []

    def host_ok(host: str) -> bool:
        bare = host.removeprefix("*.")
        return "*" not in bare and len(host) <= 253 and bool(_DNS1123_SUBDOMAIN.match(bare))

    for i, rule in enumerate(spec.get("rules") or []):
        host = str(rule.get("host", ""))
        if host and not host_ok(host):
            out.append(
                f"spec.rules[{i}].host {host!r}: must be a DNS-1123 subdomain, optionally with a leading '*.'"
            )
        for j, path in enumerate(_get(rule, "http", "paths") or []):
            if path.get("pathType") in {"Prefix", "Exact"} and not str(path.get("path", "")).startswith("/"):
                out.append(f"spec.rules[{i}].http.paths[{j}].path: must be an absolute path")
            port = _get(path, "backend", "service", "port") or {}
            if ("name" in port) == ("number" in port):
                out.append(
                    f"spec.rules[{i}].http.paths[{j}].backend.service.port: exactly one of name or number"
                )
    out.extend(
        f"spec.tls[{i}].hosts {host!r}: must be a DNS-1123 subdomain, optionally with a leading '*.'"
        for i, tls in enumerate(spec.get("tls") or [])
        for host in tls.get("hosts") or []
        if not host_ok(str(host))
    )
    return out


def _check_network_policy(body: Mapping[str, Any]) -> list[str]:
    spec = body.get("spec") or {}
    out = _check_selector(spec.get("podSelector"), "spec.podSelector")
    types = spec.get("policyTypes") or []
    if set(types) - {"Ingress", "Egress"} or len(types) > 2:
        out.append(f"spec.policyTypes {types!r}: only Ingress and Egress, each once")
    for direction, peer_key in (("ingress", "from"), ("egress", "to")):
        for i, rule in enumerate(spec.get(direction) or []):
            where = f"spec.{direction}[{i}]"
            for j, port in enumerate(rule.get("ports") or []):
                value = port.get("port")
                if isinstance(value, int) and not 1 <= value <= 65535:
                    out.append(f"{where}.ports[{j}].port: must be between 1 and 65535")
                if isinstance(value, str) and (why := _port_name(value)):
                    out.append(f"{where}.ports[{j}].port {value!r}: {why}")
                if "endPort" in port and (not isinstance(value, int) or int(port["endPort"]) < value):
                    out.append(f"{where}.ports[{j}].endPort: needs a numeric port and must be at least it")
                if port.get("protocol", "TCP") not in {"TCP", "UDP", "SCTP"}:
                    out.append(f"{where}.ports[{j}].protocol: must be TCP, UDP or SCTP")
            for j, peer in enumerate(rule.get(peer_key) or []):
                out += _check_peer(peer, f"{where}.{peer_key}[{j}]")
    return out


def _check_peer(peer: Mapping[str, Any], where: str) -> list[str]:
    out: list[str] = []
    block = peer.get("ipBlock")
    if block is not None:
        if "podSelector" in peer or "namespaceSelector" in peer:
            out.append(f"{where}: ipBlock may not be combined with a selector")
        try:
            cidr = ipaddress.ip_network(str(block.get("cidr")), strict=False)
        except ValueError:
            return [*out, f"{where}.ipBlock.cidr {block.get('cidr')!r}: must be a valid CIDR"]
        for k, exc in enumerate(block.get("except") or []):
            try:
                inner = ipaddress.ip_network(str(exc), strict=False)
            except ValueError:
                out.append(f"{where}.ipBlock.except[{k}] {exc!r}: must be a valid CIDR")
                continue
            if inner.version != cidr.version or not inner.subnet_of(cidr) or inner == cidr:  # type: ignore[arg-type]
                out.append(f"{where}.ipBlock.except[{k}] {exc!r}: must be a strict subset of {cidr}")
    elif not ("podSelector" in peer or "namespaceSelector" in peer):
        out.append(f"{where}: must have podSelector, namespaceSelector or ipBlock")
    out += _check_selector(peer.get("podSelector"), f"{where}.podSelector")
    out += _check_selector(peer.get("namespaceSelector"), f"{where}.namespaceSelector")
    return out


def _check_hpa(body: Mapping[str, Any]) -> list[str]:
    spec = body.get("spec") or {}
    out: list[str] = []
    low, high = int(spec.get("minReplicas", 1)), int(spec.get("maxReplicas", 0))
    if low < 1:
        out.append("spec.minReplicas: must be greater than or equal to 1")
    if high < 1 or high < low:
        out.append("spec.maxReplicas: must be at least 1 and at least minReplicas")
    for direction in ("scaleUp", "scaleDown"):
        rules = _get(spec, "behavior", direction) or {}
        window = int(rules.get("stabilizationWindowSeconds", 0))
        if not 0 <= window <= 3600:
            out.append(f"spec.behavior.{direction}.stabilizationWindowSeconds: must be between 0 and 3600")
        if rules.get("selectPolicy", "Max") not in {"Max", "Min", "Disabled"}:
            out.append(f"spec.behavior.{direction}.selectPolicy: must be Max, Min or Disabled")
        for i, policy in enumerate(rules.get("policies") or []):
            if int(policy.get("value", 0)) <= 0:
                out.append(f"spec.behavior.{direction}.policies[{i}].value: must be greater than 0")
            if not 0 < int(policy.get("periodSeconds", 0)) <= 1800:
                out.append(
                    f"spec.behavior.{direction}.policies[{i}].periodSeconds: must be between 1 and 1800"
                )
    return out


def _check_pdb(body: Mapping[str, Any]) -> list[str]:
    spec = body.get("spec") or {}
    out = _check_selector(spec.get("selector"), "spec.selector")
    if "minAvailable" in spec and "maxUnavailable" in spec:
        out.append("spec: minAvailable and maxUnavailable cannot both be set")
    for key in ("minAvailable", "maxUnavailable"):
        if key in spec:
            parsed = _int_or_percent(spec[key])
            if parsed is None or parsed[0] < 0 or (parsed[1] and parsed[0] > 100):
                out.append(
                    f"spec.{key} {spec[key]!r}: must be a non-negative integer or a percentage up to 100%"
                )
    return out


def _check_rules_of_role(body: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    for i, rule in enumerate(body.get("rules") or []):
        if not rule.get("verbs"):
            out.append(f"rules[{i}].verbs: at least one verb is required")
        if rule.get("resources") and "apiGroups" not in rule:
            out.append(f"rules[{i}].apiGroups: required with resources")
        if rule.get("nonResourceURLs") and (body.get("kind") == "Role" or rule.get("resources")):
            out.append(f"rules[{i}].nonResourceURLs: only in a ClusterRole rule without resources")
    return out


def _check_subject(subject: Mapping[str, Any], where: str, *, cluster: bool) -> list[str]:
    if subject.get("kind") not in {"ServiceAccount", "User", "Group"}:
        return [f"{where}.kind: must be ServiceAccount, User or Group"]
    if subject.get("kind") != "ServiceAccount":
        return []
    out: list[str] = []
    if subject.get("apiGroup"):
        out.append(f"{where}.apiGroup: must be empty for a ServiceAccount")
    if cluster and not subject.get("namespace"):
        out.append(f"{where}.namespace: required for a ServiceAccount")
    if not _DNS1123_SUBDOMAIN.match(str(subject.get("name", ""))):
        out.append(f"{where}.name {subject.get('name')!r}: must be a DNS-1123 subdomain")
    return out


def _check_rbac(body: Mapping[str, Any]) -> list[str]:
    kind = body.get("kind")
    if kind in {"Role", "ClusterRole"}:
        return _check_rules_of_role(body)
    # roleRef is the chart's own (judged by the real-server install tests); subjects name the
    # ServiceAccount from the values.
    out: list[str] = []
    for i, subject in enumerate(body.get("subjects") or []):
        out += _check_subject(subject, f"subjects[{i}]", cluster=kind == "ClusterRoleBinding")
    return out


def _check_data_keys(body: Mapping[str, Any]) -> list[str]:
    return [
        f"{field_name}[{key!r}]: must be alphanumerics, '-', '_' or '.'"
        for field_name in ("data", "stringData", "binaryData")
        for key in body.get(field_name) or {}
        if len(str(key)) > 253 or not _CONFIG_KEY.match(str(key))
    ]


_KIND_CHECKS: dict[str, Any] = {
    "Deployment": _check_deployment,
    "Service": _check_service,
    "Ingress": _check_ingress,
    "NetworkPolicy": _check_network_policy,
    "HorizontalPodAutoscaler": _check_hpa,
    "PodDisruptionBudget": _check_pdb,
    "Secret": _check_data_keys,
    "ConfigMap": _check_data_keys,
    **dict.fromkeys(_RBAC_KINDS, _check_rbac),
}


def check_rules(manifests: Sequence[Manifest]) -> list[str]:
    """What the API server would reject although the schema accepts it, one line each."""
    problems: list[str] = []
    seen: set[tuple[str, str, str]] = set()
    for manifest in manifests:
        body = manifest.body
        kind = str(body.get("kind"))
        key = (kind, str(_get(body, "metadata", "namespace")), str(_get(body, "metadata", "name")))
        found = _check_metadata(body)
        if key in seen:
            found.append("rendered twice: another object has the same kind, namespace and name")
        seen.add(key)
        if kind in _KIND_CHECKS:
            found += _KIND_CHECKS[kind](body)
        if kind in _POD_SPEC_PATHS:
            path = _POD_SPEC_PATHS[kind]
            found += _check_pod_spec(_get(body, *path) or {}, ".".join(path))
        problems += [f"{manifest.ref}: {p}" for p in found]
    return problems
