"""The upgrade-safety gate: what a new template version would break in existing workspaces.

Before a new version of an existing template becomes active, its parameters
(as the Coder server extracted them on import) are compared with the active
version's, and its volume resources with the active version's files:

* ``parameter-new-immutable:<name>``: a new immutable parameter without a
  default; existing workspaces cannot be updated without a value they can
  never change afterwards;
* ``parameter-removed:<name>``: removed or renamed; the value a workspace
  holds is dropped;
* ``option-removed:<name>=<value>``: a workspace holding that value fails to
  update;
* ``type-changed:<name>``, ``made-immutable:<name>``;
* ``volume-replaced:<address>``: a persistent volume (or the namespace holding
  it) is removed, renamed or changed in an attribute that forces replacement:
  Terraform deletes it, and the developer's home with it.  As Terraform plans
  it: the candidate's ``lifecycle { ignore_changes = all }`` leaves no
  attribute able to force a replacement (``ignore_changes = [...]`` those
  listed); a ``moved`` block carries the volume to its new address, and a
  ``removed`` block with ``destroy = false`` forgets it without deleting it.
  A changed ``count`` or ``for_each``, a rename without ``moved`` and a
  removal without ``removed`` still delete it.

A finding blocks the version unless it is accepted in the template's
``template.toml`` (``[upgrade] accept = ["parameter-removed:old"]``) or with
``publish --accept-breaking``.  Nothing here talks to Coder: the publish step
fetches the two versions and hands them over.
"""

from __future__ import annotations

import io
import re
import tarfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from coderbundle.errors import PublishError
from coderbundle.hcl import Block, HclSyntaxError, parse_text

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

__all__ = ["Finding", "check_upgrade", "compare_parameters", "compare_volumes", "tf_files"]

# Resources whose replacement loses a developer's data, and the attributes that force it
# (hashicorp/kubernetes: ForceNew on the PVC spec and any metadata name or namespace).
VOLUME_TYPES = frozenset(
    {
        "kubernetes_persistent_volume_claim",
        "kubernetes_persistent_volume_claim_v1",
        "kubernetes_namespace",
        "kubernetes_namespace_v1",
        "docker_volume",
    }
)
_FORCE_NEW = (
    ("count",),
    ("for_each",),
    ("name",),
    ("metadata", "name"),
    ("metadata", "namespace"),
    ("metadata", "generate_name"),
    ("spec", "storage_class_name"),
    ("spec", "access_modes"),
    ("spec", "volume_name"),
    ("spec", "volume_mode"),
)


@dataclass(frozen=True)
class Finding:
    """One way the candidate would break existing workspaces."""

    id: str
    message: str


def _by_name(params: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    return {str(p["name"]): p for p in params}


def compare_parameters(
    active: Iterable[Mapping[str, Any]], candidate: Iterable[Mapping[str, Any]]
) -> list[Finding]:
    """Findings between two ``/rich-parameters`` lists (codersdk.TemplateVersionParameter)."""
    old, new = _by_name(active), _by_name(candidate)
    found: list[Finding] = []
    for name in sorted(set(new) - set(old)):
        p = new[name]
        if p.get("required") and not p.get("mutable") and not p.get("ephemeral"):
            found.append(
                Finding(
                    f"parameter-new-immutable:{name}",
                    f"new immutable parameter {name!r} has no default: existing workspaces cannot "
                    "update without a value they can never change; give it a default",
                )
            )
    found += [
        Finding(
            f"parameter-removed:{name}",
            f"parameter {name!r} is removed or renamed: workspaces lose the value they hold",
        )
        for name in sorted(set(old) - set(new))
    ]
    for name in sorted(set(old) & set(new)):
        found += _changed(name, old[name], new[name])
    return found


def _changed(name: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Finding]:
    found = []
    if old.get("type") != new.get("type"):
        found.append(
            Finding(
                f"type-changed:{name}",
                f"parameter {name!r} changes type {old.get('type')} -> {new.get('type')}: "
                "values workspaces hold may no longer parse",
            )
        )
    if old.get("mutable") and not new.get("mutable"):
        found.append(
            Finding(
                f"made-immutable:{name}",
                f"parameter {name!r} turns immutable: developers can no longer change what they picked",
            )
        )
    kept = {str(o.get("value")) for o in new.get("options") or []}
    if kept:  # a parameter that lost all its options became free text: every value still fits
        for option in old.get("options") or []:
            value = str(option.get("value"))
            if value not in kept:
                found.append(
                    Finding(
                        f"option-removed:{name}={value}",
                        f"option {value!r} of parameter {name!r} is removed: workspaces that chose it "
                        "fail to update",
                    )
                )
    return found


def tf_files(archive: bytes) -> dict[str, str]:
    """The top-level ``*.tf`` files of a template archive (name -> text)."""
    found = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            for member in tar.getmembers():
                if member.isfile() and member.name.endswith(".tf") and "/" not in member.name.strip("./"):
                    data = tar.extractfile(member)
                    if data is not None:
                        found[member.name.removeprefix("./")] = data.read().decode("utf-8", "replace")
    except tarfile.TarError as exc:
        msg = f"a template version's archive is not a tar file ({exc}); push the template again"
        raise PublishError(msg) from None
    return found


def _blocks(files: Mapping[str, str]) -> Iterator[Block]:
    """The top-level blocks of every file that parses."""
    for name, text in sorted(files.items()):
        try:
            tree = parse_text(text, name)
        except HclSyntaxError:
            continue  # the candidate was validated; an old version that no longer parses has no say
        yield from tree.blocks


def _volumes(files: Mapping[str, str]) -> dict[str, Block]:
    return {
        block.address: block
        for block in _blocks(files)
        if block.type == "resource" and block.labels and block.labels[0] in VOLUME_TYPES
    }


def _address(value: Any) -> str:
    """``x.y`` from the ``${x.y}`` a ``moved``/``removed`` block's ``from``/``to`` parses to."""
    text = str(value or "")
    return text[2:-1] if text.startswith("${") and text.endswith("}") else text


def _moves_and_forgotten(files: Mapping[str, str]) -> tuple[dict[str, str], set[str]]:
    """The candidate's ``moved`` blocks (from -> to) and ``removed`` blocks that keep the object."""
    moves: dict[str, str] = {}
    forgotten: set[str] = set()
    for block in _blocks(files):
        if block.type == "moved" and block.get("from") and block.get("to"):
            moves[_address(block.get("from"))] = _address(block.get("to"))
        lifecycle = block.child("lifecycle")
        if block.type == "removed" and lifecycle is not None and lifecycle.get("destroy") is False:
            forgotten.add(_address(block.get("from")))
    return moves, forgotten


_META_ARGUMENTS = (("count",), ("for_each",))  # not attributes: ignore_changes never covers them


def _ignored(block: Block) -> list[tuple[str, ...]] | None:
    """What ``lifecycle { ignore_changes }`` leaves out of the plan: None for ``all``, else paths."""
    lifecycle = block.child("lifecycle")
    value = lifecycle.get("ignore_changes") if lifecycle is not None else None
    if value == "all":
        return None
    paths = []
    for entry in value if isinstance(value, list) else []:
        text = _address(entry)  # metadata[0].name -> ("metadata", "name")
        paths.append(tuple(part for part in re.split(r"\[[^\]]*\]|\.", text) if part))
    return paths


def _force_new(block: Block) -> tuple[tuple[str, ...], ...]:
    """The replacement-forcing paths Terraform still compares for the candidate ``block``."""
    ignored = _ignored(block)
    if ignored is None:
        return _META_ARGUMENTS
    return tuple(
        path
        for path in _FORCE_NEW
        if path in _META_ARGUMENTS or not any(path[: len(i)] == i for i in ignored)
    )


def _attribute(block: Block, path: tuple[str, ...]) -> Any:
    node: Block | None = block.child(*path[:-1]) if len(path) > 1 else block
    return None if node is None else node.get(path[-1])


def compare_volumes(active: Mapping[str, str], candidate: Mapping[str, str]) -> list[Finding]:
    """Volumes (and their namespaces) the candidate removes, renames or forces to be replaced."""
    old, new = _volumes(active), _volumes(candidate)
    moves, forgotten = _moves_and_forgotten(candidate)
    found = []
    for address in sorted(old):
        target = address
        for _ in range(len(moves)):  # follow a chain of moved blocks, as Terraform does
            if target in new or target not in moves:
                break
            target = moves[target]
        if target not in new:
            if address in forgotten:
                continue  # removed { destroy = false }: Terraform forgets it, the data stays
            found.append(
                Finding(
                    f"volume-replaced:{address}",
                    f"{address} is removed or renamed: Terraform deletes it, and the data on it "
                    "(a `moved` block keeps a renamed one)",
                )
            )
            continue
        changed = [
            ".".join(path)
            for path in _force_new(new[target])
            if _attribute(old[address], path) != _attribute(new[target], path)
        ]
        if changed:
            found.append(
                Finding(
                    f"volume-replaced:{address}",
                    f"{address} changes {', '.join(changed)}: Terraform replaces it, deleting its data"
                    + (f" (moved to {target})" if target != address else ""),
                )
            )
    return found


def check_upgrade(
    *,
    active_parameters: Iterable[Mapping[str, Any]],
    candidate_parameters: Iterable[Mapping[str, Any]],
    active_files: Mapping[str, str],
    candidate_files: Mapping[str, str],
    accepted: Iterable[str] = (),
) -> tuple[list[Finding], list[Finding]]:
    """(blocking, accepted) findings of a candidate version against the active one."""
    findings = compare_parameters(active_parameters, candidate_parameters)
    findings += compare_volumes(active_files, candidate_files)
    ok = set(accepted)
    accept_all = "*" in ok
    return (
        [f for f in findings if not accept_all and f.id not in ok],
        [f for f in findings if accept_all or f.id in ok],
    )
