"""Small template bundles for publishing tests and the benchmark (valid for our rules).

Each template is the validation suite's ``good`` fixture plus the variables
publishing passes (``image``, ``namespace``) and, optionally, a sensitive
API-key variable read from ``STANDIN_ANTHROPIC_API_KEY`` at publish time.
"""

from __future__ import annotations

from pathlib import Path

from bundle_files import copy_settings

__all__ = ["API_KEY_ENV", "make_bundle", "write_template"]

REPO = Path(__file__).resolve().parent.parent.parent
GOOD = REPO / "tests" / "fixtures" / "templates" / "good"
API_KEY_ENV = "STANDIN_ANTHROPIC_API_KEY"
IMAGE_TF = """
variable "image" {
  type        = string
  description = "Workspace image, pinned by digest at publish time"
  default     = "codercom/example-base:ubuntu"
}
"""
API_KEY_TF = """
variable "anthropic_api_key" {
  type        = string
  description = "API key for the AI agent"
  sensitive   = true
  default     = ""
}
"""
TEMPLATE_TOML = """\
display_name = "%(title)s"
description = "Fixture template %(name)s for publishing tests"
icon = "/icon/k8s.png"
tags = ["kubernetes", "fixture"]
image = "base"
%(variables)s"""
API_KEY_TOML = """
[variables.anthropic_api_key]
env = "STANDIN_ANTHROPIC_API_KEY"
description = "API key for the AI agent"
"""


def write_template(root: Path, name: str, *, marker: str = "", secret: bool = False) -> None:
    folder = root / "templates" / name
    folder.mkdir(parents=True, exist_ok=True)
    main_tf = (GOOD / "main.tf").read_text()
    has_image = 'variable "image"' in main_tf  # the good fixture declares it already: once only
    if not has_image:
        main_tf = main_tf.replace('"codercom/example-base:ubuntu"', "var.image")
    main_tf = main_tf.replace('echo "$${HOME}"', f'echo "$${{HOME}}{marker}"')
    extra = ("" if has_image else IMAGE_TF) + (API_KEY_TF if secret else "")
    main_tf = main_tf.replace('\ndata "coder_parameter" "cpu"', f'{extra}\ndata "coder_parameter" "cpu"', 1)
    (folder / "main.tf").write_text(main_tf)
    variables = API_KEY_TOML if secret else ""
    title = name.replace("-", " ").title()
    (folder / "template.toml").write_text(
        TEMPLATE_TOML % {"title": title, "name": name, "variables": variables}
    )
    (folder / "README.md").write_text(f"# {title}\n\nA fixture workspace.\n")


def make_bundle(
    root: Path, names: tuple[str, ...], *, secret: tuple[str, ...] = (), concurrency: int = 3
) -> Path:
    """A bundle root with the repository's bundle.toml and one template per name."""
    (root / "templates").mkdir(parents=True)
    copy_settings(root)  # bundle.toml and the files it names (a values_file, getting-started step 8)
    toml = (root / "bundle.toml").read_text().replace("concurrency = 3", f"concurrency = {concurrency}")
    (root / "bundle.toml").write_text(toml)
    for name in names:
        write_template(root, name, secret=name in secret)
    return root
