"""THE hashicorp/kubernetes stand-in provider process: Terraform's plugin protocol 6 over gRPC.

The real provider 2.38.0 cannot be built here (the Go module proxy refuses
every version of it), so tests run real Terraform against this stand-in.  It
does go-plugin's handshake (magic cookie, protocol 6, TLS with the server
certificate in the handshake line, ``plugin.GRPCController/Shutdown``) and
serves the schema the validator already has,
``tools/coderbundle/data/kubernetes.json``: every resource and data source
with schema data there, their attributes (required or optional; ``id``
optional and computed, as in the SDK) and nested blocks (list nesting with the
data's min/max items), and the real provider's top-level arguments.  Real
``terraform validate`` checks configurations against that schema; ``terraform
plan`` plans creates (``id`` known after apply), updates and deletes.

What it cannot do, because the schema data does not say or no cluster exists:
computed-only attributes (``metadata.uid`` ...) are absent, sets are served as
lists, provider-side defaults and replacement triggers are unknown, data
sources cannot be read, nothing can be applied or imported.  Its errors say
so; it is never the real provider.

Terraform starts it (through the launcher ``kubernetes_provider.py install``
writes) several times per command, so this module imports only what serving
needs.  The protobuf stubs it loads are generated at install time.
"""

# ruff: noqa: T201 - a plugin: the handshake line goes to stdout
from __future__ import annotations

import base64
import importlib
import json
import os
import sys
import threading
from concurrent import futures
from pathlib import Path
from typing import Any

__all__ = [
    "PROVIDER",
    "UNKNOWN",
    "VERSION",
    "Schema",
    "decode",
    "encode",
    "load_stubs",
    "make_servicer",
    "parse_type",
    "provider_schema",
    "serve",
    "value_from_json",
]

PROVIDER = "hashicorp/kubernetes"
VERSION = "2.38.0"
# go-plugin handshake (terraform internal/plugin6/serve.go, go-plugin client.go).
MAGIC_COOKIE_KEY = "TF_PLUGIN_MAGIC_COOKIE"
MAGIC_COOKIE_VALUE = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2"
CORE_PROTOCOL = 1
APP_PROTOCOL = 6
STANDIN_NOTE = (
    f"stand-in for {PROVIDER} {VERSION} (tests/standin/): it serves the schema "
    "data in tools/coderbundle/data/kubernetes.json for terraform validate and plan; it is not the "
    "real provider, has no cluster, and cannot apply, import or read anything"
)

# The real provider's top-level arguments (kubernetes/provider.go at v2.38.0):
# every one is optional; exec and experiments are list blocks of at most one.
_PROVIDER_STRINGS = (
    "host username password tls_server_name client_certificate client_key cluster_ca_certificate "
    "config_path config_context config_context_auth_info config_context_cluster token proxy_url"
)
PROVIDER_ATTRS = {
    **dict.fromkeys(_PROVIDER_STRINGS.split(), "string"),
    "insecure": "bool",
    "config_paths": "list(string)",
    "ignore_annotations": "list(string)",
    "ignore_labels": "list(string)",
}
PROVIDER_BLOCKS = {
    "exec": {
        "a": {"api_version": "string", "command": "string", "env": "map(string)", "args": "list(string)"},
        "r": ["api_version", "command"],
    },
    "experiments": {"a": {"manifest_resource": "bool"}, "d": ["manifest_resource"]},
}


# --- cty values in msgpack ------------------------------------------------------------------


class _Unknown:
    """Terraform's unknown value ("known after apply"); ``UNKNOWN`` is the one instance."""

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN = _Unknown()
# cty's msgpack form of a wholly unknown value: fixext1, type 0, one nul byte.
_UNKNOWN_EXT = (0, b"\x00")


def decode(data: bytes) -> Any:
    """A DynamicValue's msgpack as Python values; every extension is an unknown value."""
    import msgpack  # noqa: PLC0415 - the installer runs without it

    if not data:
        return None
    return msgpack.unpackb(data, raw=False, strict_map_key=False, ext_hook=lambda _c, _d: UNKNOWN)


def encode(value: Any) -> bytes:
    """Python values (as ``decode`` gives them) back to msgpack."""
    import msgpack  # noqa: PLC0415

    def default(obj: Any) -> Any:
        if obj is UNKNOWN:
            return msgpack.ExtType(*_UNKNOWN_EXT)
        raise TypeError(f"cannot encode {obj!r}")

    return msgpack.packb(value, use_bin_type=True, default=default)


def parse_type(text: str) -> Any:
    """A type as kubernetes.json writes it (``list(string)``) in cty's JSON form.

    ``map(any)`` is how the CDKTF data writes the provider's dynamic attributes
    (``kubernetes_manifest.manifest``, ``kubernetes_resource.object``): served as
    ``dynamic``.
    """
    if text == "map(any)":
        return "dynamic"
    kind, _, inner = text.partition("(")
    if not inner:
        return "dynamic" if kind == "any" else kind
    return [kind, parse_type(inner.removesuffix(")"))]


def value_from_json(value: Any, ty: Any) -> Any:  # noqa: PLR0911 - one case per type kind
    """A JSON state value of cty type ``ty`` as msgpack-ready Python (objects get every attribute)."""
    if value is None:
        return None
    if ty == "dynamic":
        inner = value["type"]
        return [json.dumps(inner).encode(), value_from_json(value["value"], inner)]
    if isinstance(ty, str):
        return value
    kind, inner = ty[0], ty[1]
    if kind in {"list", "set"}:
        return [value_from_json(v, inner) for v in value]
    if kind == "map":
        return {k: value_from_json(v, inner) for k, v in value.items()}
    if kind == "tuple":
        return [value_from_json(v, t) for v, t in zip(value, inner, strict=True)]
    if kind == "object":
        unknown = sorted(set(value) - set(inner))
        if unknown:
            raise ValueError(f"unsupported attribute {unknown[0]!r}")
        return {k: value_from_json(value.get(k), t) for k, t in inner.items()}
    raise ValueError(f"unknown type {ty!r}")


# --- the schema ------------------------------------------------------------------------------


class Schema:
    """kubernetes.json: nodes, resource and data source entry points."""

    def __init__(self, nodes: list[dict[str, Any]], resources: dict[str, int], data: dict[str, int]) -> None:
        self.nodes, self.resources, self.data = nodes, resources, data

    @classmethod
    def load(cls, path: Path) -> Schema:
        """Read kubernetes.json (and fail on another provider or version)."""
        raw = json.loads(path.read_bytes())
        if raw.get("provider") != PROVIDER or raw.get("version") != VERSION:
            msg = f"{path}: schema data for {raw.get('provider')} {raw.get('version')}, not {VERSION}"
            raise ValueError(msg)
        return cls(raw["nodes"], raw["resources"], raw["data"])

    def node(self, type_name: str, *, data: bool = False) -> dict[str, Any]:
        """The top node of a resource or data source."""
        table = self.data if data else self.resources
        return self.nodes[table[type_name]]

    def object_type(self, node: dict[str, Any]) -> Any:
        """A block's value type: its attributes and nested blocks (lists of objects)."""
        attrs = {name: parse_type(t) for name, t in node.get("a", {}).items()}
        for name, (child, _mn, _mx) in node.get("b", {}).items():
            attrs[name] = ["list", self.object_type(self.nodes[child])]
        return ["object", attrs]


def _block(pb: Any, node: dict[str, Any], nodes: list[dict[str, Any]], *, top: bool, memo: dict) -> Any:
    """A tfplugin6 Schema.Block for one node (nested nodes built once each)."""
    key = (id(node), top)
    if key in memo:
        return memo[key]
    block = pb.Schema.Block()
    required, deprecated = set(node.get("r", ())), set(node.get("d", ()))
    for name, text in node.get("a", {}).items():
        computed = top and name == "id"  # SDKv2's id: optional and computed
        block.attributes.add(
            name=name,
            type=json.dumps(parse_type(text)).encode(),
            required=name in required,
            optional=name not in required,
            computed=computed,
            deprecated=name in deprecated,
        )
    for name, (child, min_items, max_items) in node.get("b", {}).items():
        nested = block.block_types.add(
            type_name=name,
            nesting=pb.Schema.NestedBlock.LIST,
            min_items=min_items,
            max_items=max_items,
        )
        nested.block.CopyFrom(_block(pb, nodes[child], nodes, top=False, memo=memo))
    memo[key] = block
    return block


def provider_schema(pb: Any, schema: Schema) -> Any:
    """The GetProviderSchema response."""
    memo: dict = {}
    resp = pb.GetProviderSchema.Response()
    provider_node = {"a": PROVIDER_ATTRS, "b": {}}
    nodes = [*schema.nodes]
    for name, spec in PROVIDER_BLOCKS.items():
        nodes.append(spec)
        provider_node["b"][name] = [len(nodes) - 1, 0, 1]
    resp.provider.block.CopyFrom(_block(pb, provider_node, nodes, top=False, memo=memo))
    for name, node_id in schema.resources.items():
        resp.resource_schemas[name].block.CopyFrom(_block(pb, nodes[node_id], nodes, top=True, memo=memo))
    for name, node_id in schema.data.items():
        resp.data_source_schemas[name].block.CopyFrom(_block(pb, nodes[node_id], nodes, top=True, memo=memo))
    resp.server_capabilities.get_provider_schema_optional = True
    return resp


# --- the provider service --------------------------------------------------------------------


def _error(pb: Any, summary: str, detail: str = STANDIN_NOTE) -> Any:
    return pb.Diagnostic(severity=pb.Diagnostic.ERROR, summary=summary, detail=detail)


def make_servicer(pb: Any, pb_grpc: Any, schema: Schema) -> Any:  # noqa: C901 - one method per RPC
    """A ProviderServicer over ``schema`` (the stubs are generated at run time, hence the factory)."""
    lock = threading.Lock()
    cache: dict[str, Any] = {}

    def full_schema() -> Any:
        with lock:
            if "resp" not in cache:
                cache["resp"] = provider_schema(pb, schema)
            return cache["resp"]

    def unknown_type(kind: str, name: str) -> Any:
        return _error(pb, f"stand-in {PROVIDER} {VERSION} has no {kind} {name!r} in its schema data")

    class Provider(pb_grpc.ProviderServicer):  # type: ignore[misc, name-defined]
        def GetMetadata(self, request: Any, context: Any) -> Any:  # noqa: N802
            del request, context
            return pb.GetMetadata.Response(
                server_capabilities=pb.ServerCapabilities(get_provider_schema_optional=True),
                resources=[pb.GetMetadata.ResourceMetadata(type_name=n) for n in schema.resources],
                data_sources=[pb.GetMetadata.DataSourceMetadata(type_name=n) for n in schema.data],
            )

        def GetProviderSchema(self, request: Any, context: Any) -> Any:  # noqa: N802
            del request, context
            return full_schema()

        def GetFunctions(self, request: Any, context: Any) -> Any:  # noqa: N802
            del request, context
            return pb.GetFunctions.Response()

        def CallFunction(self, request: Any, context: Any) -> Any:  # noqa: N802
            del context
            return pb.CallFunction.Response(
                error=pb.FunctionError(text=f"stand-in has no function {request.name!r}; {STANDIN_NOTE}")
            )

        def ValidateProviderConfig(self, request: Any, context: Any) -> Any:  # noqa: N802
            del request, context
            return pb.ValidateProviderConfig.Response()

        def ConfigureProvider(self, request: Any, context: Any) -> Any:  # noqa: N802
            del request, context
            return pb.ConfigureProvider.Response()

        def ValidateResourceConfig(self, request: Any, context: Any) -> Any:  # noqa: N802
            del context
            if request.type_name not in schema.resources:
                return pb.ValidateResourceConfig.Response(
                    diagnostics=[unknown_type("resource", request.type_name)]
                )
            return pb.ValidateResourceConfig.Response()

        def ValidateDataResourceConfig(self, request: Any, context: Any) -> Any:  # noqa: N802
            del context
            if request.type_name not in schema.data:
                return pb.ValidateDataResourceConfig.Response(
                    diagnostics=[unknown_type("data source", request.type_name)]
                )
            return pb.ValidateDataResourceConfig.Response()

        def UpgradeResourceState(self, request: Any, context: Any) -> Any:  # noqa: N802
            del context
            if request.type_name not in schema.resources:
                return pb.UpgradeResourceState.Response(
                    diagnostics=[unknown_type("resource", request.type_name)]
                )
            ty = schema.object_type(schema.node(request.type_name))
            try:
                state = value_from_json(json.loads(request.raw_state.json or b"null"), ty)
            except (ValueError, KeyError, TypeError) as exc:
                return pb.UpgradeResourceState.Response(
                    diagnostics=[_error(pb, "stand-in cannot read this state", f"{exc}; {STANDIN_NOTE}")]
                )
            return pb.UpgradeResourceState.Response(upgraded_state=pb.DynamicValue(msgpack=encode(state)))

        def ReadResource(self, request: Any, context: Any) -> Any:  # noqa: N802
            del context  # no cluster to read from: the object is as Terraform last saw it
            return pb.ReadResource.Response(new_state=request.current_state, private=request.private)

        def PlanResourceChange(self, request: Any, context: Any) -> Any:  # noqa: N802
            del context
            if request.type_name not in schema.resources:
                return pb.PlanResourceChange.Response(
                    diagnostics=[unknown_type("resource", request.type_name)]
                )
            proposed = decode(request.proposed_new_state.msgpack)
            if proposed is None:  # destroy
                return pb.PlanResourceChange.Response(planned_state=request.proposed_new_state)
            prior = decode(request.prior_state.msgpack)
            if proposed.get("id") is None:
                # A new object's id is known after apply; an existing one keeps its own.
                proposed["id"] = prior.get("id") if isinstance(prior, dict) and prior.get("id") else UNKNOWN
            return pb.PlanResourceChange.Response(
                planned_state=pb.DynamicValue(msgpack=encode(proposed)),
                planned_private=request.prior_private,
            )

        def ApplyResourceChange(self, request: Any, context: Any) -> Any:  # noqa: N802
            del context
            return pb.ApplyResourceChange.Response(
                diagnostics=[_error(pb, f"stand-in cannot apply {request.type_name}")]
            )

        def ImportResourceState(self, request: Any, context: Any) -> Any:  # noqa: N802
            del context
            return pb.ImportResourceState.Response(
                diagnostics=[_error(pb, f"stand-in cannot import {request.type_name}")]
            )

        def MoveResourceState(self, request: Any, context: Any) -> Any:  # noqa: N802
            del context
            return pb.MoveResourceState.Response(
                diagnostics=[_error(pb, f"stand-in cannot move state to {request.target_type_name}")]
            )

        def ReadDataSource(self, request: Any, context: Any) -> Any:  # noqa: N802
            del context
            return pb.ReadDataSource.Response(
                diagnostics=[_error(pb, f"stand-in cannot read data source {request.type_name}")]
            )

        def StopProvider(self, request: Any, context: Any) -> Any:  # noqa: N802
            del request, context
            return pb.StopProvider.Response()

    return Provider()


# --- the plugin process ----------------------------------------------------------------------


def _server_key_pair(directory: Path) -> tuple[bytes, bytes]:
    """The TLS key and certificate ``install`` wrote (PEM)."""
    try:
        return (directory / "server.key").read_bytes(), (directory / "server.pem").read_bytes()
    except FileNotFoundError as exc:
        msg = f"no TLS key pair in {directory}: run kubernetes_provider.py install"
        raise SystemExit(msg) from exc


def load_stubs(stubs: Path) -> tuple[Any, Any]:
    """The generated ``tfplugin6_pb2`` and ``tfplugin6_pb2_grpc`` modules from ``stubs``."""
    where = str(stubs.resolve())
    if where not in sys.path:
        sys.path.insert(0, where)
    return importlib.import_module("tfplugin6_pb2"), importlib.import_module("tfplugin6_pb2_grpc")


def serve(schema_path: Path, stubs: Path, tls_dir: Path | None = None) -> int:
    """Run as a Terraform plugin: handshake on stdout, serve until Terraform shuts it down."""
    parent = os.getppid()
    if os.environ.get(MAGIC_COOKIE_KEY) != MAGIC_COOKIE_VALUE:
        print(
            f"This is a Terraform provider plugin ({STANDIN_NOTE}); Terraform starts it, not you.",
            file=sys.stderr,
        )
        return 1
    offered = os.environ.get("PLUGIN_PROTOCOL_VERSIONS", str(APP_PROTOCOL)).split(",")
    if str(APP_PROTOCOL) not in offered:
        print(
            f"stand-in speaks plugin protocol {APP_PROTOCOL} only; Terraform offers {offered}",
            file=sys.stderr,
        )
        return 1
    import grpc  # noqa: PLC0415 - the installer runs without it

    pb, pb_grpc = load_stubs(stubs)
    schema = Schema.load(schema_path)
    done = threading.Event()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8),
        options=[("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)],
    )
    pb_grpc.add_ProviderServicer_to_server(make_servicer(pb, pb_grpc, schema), server)

    def shutdown(_request: bytes, _context: Any) -> bytes:
        done.set()
        return b""  # plugin.Empty

    controller = grpc.method_handlers_generic_handler(
        "plugin.GRPCController",
        {"Shutdown": grpc.unary_unary_rpc_method_handler(shutdown, lambda b: b, lambda b: b)},
    )
    server.add_generic_rpc_handlers((controller,))
    client_cert = os.environ.get("PLUGIN_CLIENT_CERT")
    cert_field = ""
    if client_cert:  # Terraform's AutoMTLS (on unless TF_DISABLE_PLUGIN_TLS is set)
        key_pem, cert_pem = _server_key_pair(tls_dir or stubs.parent)
        # Server-side TLS only: Terraform's client certificate is ECDSA P-521, and gRPC's
        # TLS server lists no ECDSA-with-SHA-512 among the signature algorithms it asks
        # clients for, so Go would send no certificate and the handshake would fail.
        # Terraform still pins the server certificate printed in the handshake line.
        creds = grpc.ssl_server_credentials([(key_pem, cert_pem)])
        port = server.add_secure_port("127.0.0.1:0", creds)
        der = base64.b64decode(b"".join(cert_pem.strip().splitlines()[1:-1]))
        cert_field = base64.b64encode(der).decode().rstrip("=")  # go-plugin: RawStdEncoding
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"{CORE_PROTOCOL}|{APP_PROTOCOL}|tcp|127.0.0.1:{port}|grpc|{cert_field}", flush=True)
    while not done.wait(timeout=1.0):
        if os.getppid() != parent:  # Terraform died without shutting us down: do not linger
            break
    server.stop(grace=0.2).wait()
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown: Terraform waits for the process to end


def main(argv: list[str] | None = None) -> int:
    """``serve --schema FILE --stubs DIR [--tls DIR]``, as the launcher runs it."""
    args = list(sys.argv[1:] if argv is None else argv)
    opts = dict(zip(args[1::2], args[2::2], strict=False))
    if not args or args[0] != "serve" or not {"--schema", "--stubs"} <= opts.keys():
        print(
            "usage: kubernetes_provider_server.py serve --schema FILE --stubs DIR [--tls DIR]",
            file=sys.stderr,
        )
        return 2
    tls = Path(opts["--tls"]) if "--tls" in opts else None
    return serve(Path(opts["--schema"]), Path(opts["--stubs"]), tls)


if __name__ == "__main__":
    sys.exit(main())
