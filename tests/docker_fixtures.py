"""Fixtures for tests that need a real Docker daemon (imported by test_images.py).

``.ci/docker-setup.sh`` prepares that daemon: dockerd with overlay2, a local
upstream image built from Debian packages, and Debian's registry on
127.0.0.1:5000.  Without them the tests that need them skip with the reason.
"""

from __future__ import annotations

import gc
import os
import shutil
import urllib.request
import warnings
from pathlib import Path

import pytest
from docker.errors import ImageNotFound

from bundle_files import copy_settings
from coderbundle import docker_stream as ds
from coderbundle.errors import ImageBuildError
from coderbundle.settings import Settings

REPO = Path(__file__).resolve().parent.parent
IMAGE_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "images"
UPSTREAM = os.environ.get("CODERBUNDLE_UPSTREAM_IMAGE", "coderbundle-upstream/debian:trixie")
# The tests build from the package registries (as .ci/images.sh does), so they
# share its content tags and work where nodejs.org and go.dev are unreachable.
DOWNLOAD_SOURCE = os.environ.get("CODERBUNDLE_DOWNLOAD_SOURCE", "registries")
LOCAL_REGISTRY = "127.0.0.1:5000"

__all__ = [
    "IMAGE_FIXTURES",
    "LOCAL_REGISTRY",
    "REPO",
    "UPSTREAM",
    "docker_client",
    "image_root",
    "local_registry",
    "make_image_root",
    "make_settings",
    "remove_test_images",
    "settings_for",
    "upstream_image",
]


@pytest.fixture(scope="session")
def docker_client():
    """A client for the real daemon, or a skip saying why there is none."""
    try:
        client = ds.connect(os.environ)
    except ImageBuildError as exc:
        # docker-py leaves the failed socket to the garbage collector: collect it
        # here, quietly, instead of as an unraisable warning in a later test.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
        pytest.skip(f"{exc} (run .ci/docker-setup.sh)")
    yield client
    client.close()


@pytest.fixture(scope="session")
def upstream_image(docker_client):
    """The locally built upstream image (no image can be pulled on this machine)."""
    try:
        docker_client.images.get(UPSTREAM)
    except ImageNotFound:
        pytest.skip(f"upstream image {UPSTREAM} is missing; run .ci/docker-setup.sh")
    return UPSTREAM


@pytest.fixture(scope="session")
def local_registry(docker_client):
    """Debian's docker-registry on 127.0.0.1:5000, or a skip."""
    del docker_client
    try:
        with urllib.request.urlopen(f"http://{LOCAL_REGISTRY}/v2/", timeout=2):
            pass
    except OSError as exc:
        pytest.skip(f"no registry on {LOCAL_REGISTRY} ({exc}); run .ci/docker-setup.sh")
    return LOCAL_REGISTRY


@pytest.fixture
def remove_test_images(docker_client):
    """Untag, after the test, the images pushed (or refused) under test repositories."""
    yield
    prefixes = (f"{LOCAL_REGISTRY}/cbtest/", "registry.invalid:5000/")
    for image in docker_client.images.list():
        for tag in image.tags:
            if tag.startswith(prefixes):
                docker_client.images.remove(tag, force=True)


def make_image_root(root: Path, *, real: tuple[str, ...] = (), fixture: str = "") -> Path:
    """A bundle root at ``root`` with real images and/or one fixture set of images."""
    images = root / "images"
    images.mkdir(parents=True)
    copy_settings(root)
    for name in real:
        shutil.copytree(REPO / "images" / name, images / name)
    if fixture:
        shutil.copytree(IMAGE_FIXTURES / fixture, images, dirs_exist_ok=True)
    return root


@pytest.fixture
def image_root(tmp_path):
    """Factory: ``image_root(real=("base",), fixture="tiny")`` returns a bundle root."""

    def factory(*, real: tuple[str, ...] = (), fixture: str = "") -> Path:
        return make_image_root(tmp_path / "bundle", real=real, fixture=fixture)

    return factory


def make_settings(root: Path, **overrides: str) -> Settings:
    """Settings for ``root``; the extra CA and download source as .ci/images.sh sets them."""
    values = {
        "extra_ca_cert": os.environ.get("CODERBUNDLE_EXTRA_CA_CERT", ""),
        "download_source": DOWNLOAD_SOURCE,
        **overrides,
    }
    return Settings(root=root, **values)


@pytest.fixture
def settings_for():
    """Factory: ``settings_for(root, registry=...)`` returns frozen Settings."""
    return make_settings
