"""hashicorp/kubernetes schemas from the jsii assembly of the CDKTF provider package.

``cdktf-cdktf-provider-kubernetes`` 12.1.1 (deprecated, dev-only) was generated
from hashicorp/kubernetes 2.38.0.  Its ``_jsii/*.jsii.tgz`` holds one interface
per block (``...Config`` for the resource itself): a property typed as a single
struct is a block with ``max_items = 1``, an array of structs is a list block,
everything else is an attribute.  The snake_case name is the anchor of the
registry link in each property's docs.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
import zipfile
from typing import TYPE_CHECKING, Any

from schemagen_common import Interner, Node

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["API_REQUIRED", "KUBERNETES_DATA", "KUBERNETES_RESOURCES", "kubernetes_schema"]


def _words(text: str) -> list[str]:
    return text.split()


# The resources and data sources templates may use (each with its non-_v1 alias).
_BASE = _words("""
    config_map cluster_role cluster_role_binding cron_job deployment horizontal_pod_autoscaler
    ingress job limit_range namespace network_policy persistent_volume persistent_volume_claim
    pod pod_disruption_budget priority_class resource_quota role role_binding secret service
    service_account stateful_set storage_class
""")
_EXTRA = _words("""
    daemonset daemon_set_v1 runtime_class_v1 annotations labels env manifest
    config_map_v1_data secret_v1_data
""")
_DATA_BASE = _words("""
    config_map namespace persistent_volume_claim pod secret service service_account
    storage_class ingress
""")
_DATA_EXTRA = _words("all_namespaces nodes resource resources server_version")
KUBERNETES_RESOURCES = tuple(
    f"kubernetes_{n}" for n in [*(b + s for b in _BASE for s in ("", "_v1")), *_EXTRA]
)
KUBERNETES_DATA = tuple(
    f"kubernetes_{n}" for n in [*(b + s for b in _DATA_BASE for s in ("", "_v1")), *_DATA_EXTRA]
)

# Fields the Kubernetes API (core/v1 reference) requires but the provider schema
# leaves optional; the checker reports them as CS109, apart from schema facts.
API_REQUIRED = {
    "persistent_volume_claim": "claim_name",  # PersistentVolumeClaimVolumeSource.claimName
    "host_path": "path",  # HostPathVolumeSource.path
    "volume": "name",  # Volume.name
}

_CLASS_DOC = re.compile(r"docs/(resources|data-sources)/\w+ (\w+)\}")
_ANCHOR = re.compile(r"#(\w+) ")
_PRIMITIVE = {"string": "string", "number": "number", "boolean": "bool", "any": "any"}


def load_assembly(wheel: Path) -> dict[str, Any]:
    """The ``.jsii`` JSON from inside the wheel's ``_jsii/*.jsii.tgz``."""
    with zipfile.ZipFile(wheel) as zf:
        (name,) = (n for n in zf.namelist() if n.endswith(".jsii.tgz"))
        blob = zf.read(name)
    with tarfile.open(fileobj=io.BytesIO(blob)) as tf:
        member = tf.extractfile("package/.jsii")
        if member is None:
            raise SystemExit(f"{wheel}: no package/.jsii in {name}")
        data: dict[str, Any] = json.load(member)
    return data


def _snake(prop: dict[str, Any]) -> str:
    match = _ANCHOR.search(prop.get("docs", {}).get("remarks", "") + " ")
    match = match or _ANCHOR.search(prop.get("docs", {}).get("summary", "") + " ")
    if match:
        return match.group(1)
    return re.sub(r"(?<!^)([A-Z])", r"_\1", prop["name"]).lower()


def _kind(t: dict[str, Any]) -> tuple[str, str]:
    """``("attr", type)``, ``("single", fqn)`` or ``("list", fqn)``."""
    if "primitive" in t:
        return "attr", _PRIMITIVE[t["primitive"]]
    if "fqn" in t:
        return "single", t["fqn"]
    if "union" in t:
        inner = [u for u in t["union"]["types"] if u.get("fqn") != "cdktf.IResolvable"]
        return _kind(inner[0]) if inner[0].get("primitive") else _kind_list(inner[0])
    return _kind_list(t)


def _kind_list(t: dict[str, Any]) -> tuple[str, str]:
    coll = t["collection"]
    elem = coll["elementtype"]
    if "fqn" in elem:
        return "list", elem["fqn"]
    container = "map" if coll["kind"] == "map" else "list"
    return "attr", f"{container}({_PRIMITIVE[elem['primitive']]})"


class _Walker:
    def __init__(self, types: dict[str, Any], interner: Interner) -> None:
        self.types = types
        self.interner = interner
        self.memo: dict[str, int] = {}

    def node(self, fqn: str, block: str = "") -> int:
        if fqn not in self.memo:
            self.memo[fqn] = self.interner.add(self._build(fqn, block))
        return self.memo[fqn]

    def _build(self, fqn: str, block: str) -> Node:
        node = Node()
        for prop in self.types[fqn].get("properties", []):
            name = _snake(prop)
            kind, what = _kind(prop["type"])
            required = not prop.get("optional", False)
            if kind == "attr":
                node.attrs[name] = what
            else:
                child = self.node(what, name)
                node.blocks[name] = (child, 1 if required else 0, 1 if kind == "single" else 0)
            if required:
                node.required.add(name)
            if "deprecated" in prop.get("docs", {}):
                node.deprecated.add(name)
        if API_REQUIRED.get(block) in node.attrs.keys() - node.required:
            node.api_required.add(API_REQUIRED[block])
        return node


def kubernetes_schema(wheel: Path, interner: Interner) -> dict[str, Any]:
    """``resources``/``data`` name -> node id, plus every type name the provider has."""
    assembly = load_assembly(wheel)
    types = assembly["types"]
    walker = _Walker(types, interner)
    found: dict[str, dict[str, str]] = {"resources": {}, "data-sources": {}}
    for fqn, t in types.items():
        match = _CLASS_DOC.search(t.get("docs", {}).get("summary", "")) if t["kind"] == "class" else None
        if match:
            tf_name = match.group(2).removeprefix("data_")
            found[match.group(1)][tf_name] = fqn + "Config"
    resources = {n: walker.node(found["resources"][n]) for n in KUBERNETES_RESOURCES}
    data = {n: walker.node(found["data-sources"][n]) for n in KUBERNETES_DATA}
    return {
        "resources": resources,
        "data": data,
        "all_resources": sorted(found["resources"]),
        "all_data": sorted(found["data-sources"]),
        "package": f"{assembly['name']}@{assembly['version']}",
    }
