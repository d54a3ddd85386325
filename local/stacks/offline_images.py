"""The compose stack's images built with no registry and no network: `python -m scones.local.stacks.offline_images`.

Where no image registry can be reached (air-gapped hosts, these test machines) the Dockerfiles'
default base cannot be pulled. This builds, in order, each step cached under CACHE keyed by
what went into it, so a second run only rebuilds what changed:

1. a Debian base: `debootstrap --variant=minbase` (Python 3 and pip) from the host's own apt
   mirror, imported with `docker import`;
2. a wheelhouse: `pip download` on the host (through the host's pip configuration) of what the
   two images install, with a CPU-only torch;
3. an offline base: (1) plus the wheelhouse at /wheels and torch installed from it (as the
   default base image has torch: both images share that largest layer);
4. scones-model:local and scones-stack-tools:local from model/Dockerfile and local/Dockerfile with
   BASE_IMAGE=(3), PIP_NO_INDEX=1, PIP_FIND_LINKS=/wheels: `docker build` never touches the network.

`docker compose up` then finds both images and builds nothing. Needs root (debootstrap) and an engine.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

from scones.local.emulator.lambda_sandbox import RUNTIME_PACKAGES
from scones.local.stacks.docker_engine import has_image

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CACHE = REPO_ROOT / ".scones" / "docker-cache"
SUITE = "bookworm"  # Debian 12: Python 3.11, as pyproject's requires-python
# python3-venv: the stack-tools image builds the Lambda runtime venv (awslambdaric) with `python -m venv`.
BASE_PACKAGES = ("python3", "python3-pip", "python3-venv", "python-is-python3")
# The CPU build (about 190 MB) instead of the CUDA one (about 5 GB): the compose tests run on CPU.
DEFAULT_TORCH = "torch==2.13.0"
# What each image installs (pyproject extras), plus the build backend for `pip install .`.
IMAGE_EXTRAS = {"scones-model:local": ("serve",), "scones-stack-tools:local": ("local", "train")}
DOCKERFILES = {"scones-model:local": "model/Dockerfile", "scones-stack-tools:local": "local/Dockerfile"}


class OfflineBuildError(RuntimeError):
    """A step of the offline build failed; the message names the step and why."""


@dataclass(frozen=True)
class OfflineImages:
    base_image: str  # the offline base (Debian + /wheels) both images were built FROM
    images: tuple[str, ...]


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def host_debian_mirror(suite: str = SUITE, apt_dir: Path = Path("/etc/apt")) -> str:
    """The first apt source of this host that serves `suite` (deb822 or one-line format)."""
    sources = sorted((apt_dir / "sources.list.d").glob("*.sources")) + [apt_dir / "sources.list"]
    for path in sources:
        text = path.read_text() if path.is_file() else ""
        for stanza in text.split("\n\n"):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
            suites = re.search(r"^Suites:\s*(.+)$", stanza, re.M)
            if uris and suites and suite in suites.group(1).split():
                return uris.group(1)
        for line in text.splitlines():
            words = line.split()
            if len(words) >= 3 and words[0] == "deb" and suite in words[2:3]:
                return words[1]
    raise OfflineBuildError(f"no apt source for Debian {suite} on this host (/etc/apt/sources.list*)")


def debian_rootfs(cache: Path, mirror: str) -> Path:
    """A minbase root file system as a tar file, made once per (suite, packages, mirror)."""
    tar_path = cache / f"debian-{SUITE}-{_key(SUITE, BASE_PACKAGES, mirror)}.tar"
    if tar_path.is_file():
        return tar_path
    if not shutil.which("debootstrap"):
        raise OfflineBuildError("debootstrap is not installed (apt-get install debootstrap)")
    rootfs = cache / "rootfs.partial"
    shutil.rmtree(rootfs, ignore_errors=True)
    print(f"debootstrap {SUITE} minbase from {mirror} (about 2 minutes) ...", file=sys.stderr)
    _check(["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}", SUITE, str(rootfs), mirror],
           "debootstrap")
    for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for item in (rootfs / leftover).glob("*"):
            if item.is_file():
                item.unlink()
    partial = tar_path.with_suffix(".partial")
    _check(["tar", "-C", str(rootfs), "--numeric-owner", "--exclude=./proc/*", "--exclude=./sys/*",
            "--exclude=./dev/*", "-cf", str(partial), "."], "tar the root file system")
    partial.replace(tar_path)
    shutil.rmtree(rootfs, ignore_errors=True)
    return tar_path


def requirements(repo_root: Path, torch: str) -> list[str]:
    """Everything both images install: their pyproject extras, the torch pin, setuptools for `pip install .`."""
    project = tomllib.loads((repo_root / "pyproject.toml").read_text())
    build = project["build-system"]["requires"]
    extras = project["project"]["optional-dependencies"]
    wanted = {req for names in IMAGE_EXTRAS.values() for name in names for req in extras[name]}
    wanted |= set(RUNTIME_PACKAGES)  # the Lambda runtime venv the stack-tools image builds
    return sorted({*build, "wheel", torch, *(r for r in wanted if not r.startswith("torch>") and r != "torch")})


def wheelhouse(cache: Path, reqs: list[str]) -> Path:
    """`pip download` of reqs (binary wheels only) into a folder named by their hash."""
    folder = cache / f"wheelhouse-{_key(reqs, sys.version_info[:2])}"
    if (folder / ".complete").is_file():
        return folder
    print(f"pip download {len(reqs)} requirements into {folder} ...", file=sys.stderr)
    _check([sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--dest", str(folder), *reqs],
           "pip download")
    (folder / ".complete").touch()
    return folder


def _check(argv: list[str], step: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise OfflineBuildError(f"{step} exited {done.returncode}: {(done.stderr or done.stdout)[-2000:]}")


def _build(client, tag: str, buildargs: dict | None = None, **context) -> None:
    """Classic-builder `docker build` (no BuildKit needed) with no network; its steps go to stderr."""
    print(f"docker build {tag} ...", file=sys.stderr)
    log = []
    for chunk in client.api.build(tag=tag, buildargs=buildargs or {}, network_mode="none", rm=True, forcerm=True,
                                  decode=True, **context):
        line = str(chunk.get("stream", "")).rstrip()
        if line.startswith("Step "):
            print(f"  {line}", file=sys.stderr)
        log.append(line)
        if "error" in chunk:
            tail = "\n".join(log[-30:])
            raise OfflineBuildError(f"docker build {tag} failed: {chunk['error']}\n{tail}")


def offline_base(client, rootfs_tar: Path, wheels: Path, torch: str) -> str:
    """The Debian root file system, the wheelhouse at /wheels and torch installed from it, tagged by all three.

    torch in the base, as in the default base image: both images share that layer (the largest).
    """
    debian = _debian_tag(rootfs_tar)
    if not has_image(debian):
        print(f"docker import {rootfs_tar.name} ...", file=sys.stderr)
        repository, tag = debian.split(":")
        client.api.import_image_from_file(str(rootfs_tar), repository=repository, tag=tag)
    base = f"scones-offline-base:{_key(debian, wheels.name, torch)}"
    if not has_image(base):
        context = io.BytesIO()
        with tarfile.open(fileobj=context, mode="w") as tar:
            dockerfile = (f"FROM {debian}\nCOPY . /wheels\n"
                          f"RUN python -m pip install --no-cache-dir --no-index --find-links /wheels "
                          f"--break-system-packages '{torch}'\n").encode()
            info = tarfile.TarInfo("Dockerfile")
            info.size = len(dockerfile)
            tar.addfile(info, io.BytesIO(dockerfile))
            for wheel in sorted(wheels.glob("*.whl")):
                tar.add(wheel, arcname=wheel.name)
        context.seek(0)
        _build(client, base, fileobj=context, custom_context=True)
    return base


def _debian_tag(rootfs_tar: Path) -> str:
    return f"scones-debian:{rootfs_tar.stem.rsplit('-', 1)[-1]}"


def _drop_stale(client, cache: Path, keep: set[str], keep_images: set[str]) -> None:
    """Earlier keys' root file systems, wheelhouses and base images, and the images these tags replaced."""
    for old in [*cache.glob("debian-*.tar"), *cache.glob("wheelhouse-*")]:
        if old.name not in keep:
            shutil.rmtree(old) if old.is_dir() else old.unlink()
    for image in client.images.list(name="scones-offline-base") + client.images.list(name="scones-debian"):
        for tag in image.tags:
            if tag not in keep_images:
                client.images.remove(tag)
    client.images.prune(filters={"dangling": True})


def build_offline_images(repo_root: Path = REPO_ROOT, cache: Path = DEFAULT_CACHE, torch: str = DEFAULT_TORCH,
                         mirror: str | None = None) -> OfflineImages:
    """Steps 1–4 of the module docstring; each is skipped when its cached result is there."""
    import docker

    cache.mkdir(parents=True, exist_ok=True)
    rootfs_tar = debian_rootfs(cache, mirror or host_debian_mirror())
    wheels = wheelhouse(cache, requirements(repo_root, torch))
    client = docker.from_env(timeout=1800)
    try:
        base = offline_base(client, rootfs_tar, wheels, torch)
        args = {"BASE_IMAGE": base, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": "/wheels"}
        for tag, dockerfile in DOCKERFILES.items():
            _build(client, tag, args, path=str(repo_root), dockerfile=dockerfile)
        _drop_stale(client, cache, keep={rootfs_tar.name, wheels.name}, keep_images={base, _debian_tag(rootfs_tar)})
    finally:
        client.close()
    return OfflineImages(base, tuple(DOCKERFILES))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="Then: docker compose --profile moto up -d --wait moto-model")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where the root fs and wheels are kept")
    parser.add_argument("--torch", default=DEFAULT_TORCH, help="the torch requirement pip downloads (default: %(default)s)")
    parser.add_argument("--mirror", help="Debian mirror URL for debootstrap (default: this host's apt source)")
    args = parser.parse_args(argv)
    try:
        built = build_offline_images(REPO_ROOT, args.cache, args.torch, args.mirror)
    except OfflineBuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"built {', '.join(built.images)} FROM {built.base_image}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
