"""Rules about Terraform variables: secrets and what the publish step sets."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from coderbundle.hcl import literal
from coderbundle.rules import Model, line_of, rule

if TYPE_CHECKING:
    from collections.abc import Iterator

    from coderbundle.findings import Problem

SECRET_NAME = re.compile(r"(_key|_token|_secret|password)$|^(api_key|token|secret)$")


@rule("CB122")
def secrets_are_sensitive(m: Model) -> Iterator[Problem]:
    """Variables that hold secrets are ``sensitive`` and default to empty, never a literal."""
    for var in m.top("variable"):
        name = var.labels[0]
        if not SECRET_NAME.search(name):
            continue
        if var.get("sensitive") is not True:
            yield m.problem(var, "CB122", f"variable {name!r} holds a secret; set sensitive = true")
        default = var.get("default")
        if default is not None and literal(default) not in ("", None):
            msg = f'variable {name!r} has a literal secret default; use "" and set it at publish time'
            yield m.problem(var, "CB122", msg, line_of(var, "default"))


@rule("CB123")
def publish_variables_declared(m: Model) -> Iterator[Problem]:
    """Every ``[variables.<name>]`` in template.toml, plus ``image``, is a declared variable."""
    declared = {v.labels[0] for v in m.top("variable")}
    wanted = ["image", *m.rendered.template.settings.variables]
    first = next(iter(m.files.values()), None)
    for name in wanted:
        if name not in declared:
            msg = f"publish sets variable {name!r} but the template declares no variable {name!r}"
            yield m.problem(first, "CB123", msg)
