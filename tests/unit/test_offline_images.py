"""The offline image build's inputs: what pip downloads, and which Debian mirror debootstrap uses."""
from __future__ import annotations

from pathlib import Path

import pytest

from scones.local.stacks import offline_images

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_requirements_pin_torch_and_leave_out_what_the_images_do_not_use() -> None:
    reqs = offline_images.requirements(REPO_ROOT, "torch==2.13.0")
    names = {r.split(";")[0].split("[")[0].split(">")[0].split("=")[0].split("<")[0] for r in reqs}
    assert [r for r in reqs if r.startswith("torch")] == ["torch==2.13.0"]
    assert {"setuptools", "wheel", "moto", "starlette", "uvicorn", "pillow", "tqdm"} <= names
    assert not names & {"torchvision", "matplotlib", "scipy", "sagemaker"}


def test_the_hosts_mirror_is_read_from_deb822_sources(tmp_path: Path) -> None:
    sources = tmp_path / "etc" / "apt"
    (sources / "sources.list.d").mkdir(parents=True)
    (sources / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.invalid/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb\nURIs: http://mirror.invalid/debian\nSuites: bookworm bookworm-updates\nComponents: main\n"
    )
    assert offline_images.host_debian_mirror("bookworm", sources) == "http://mirror.invalid/debian"
    with pytest.raises(offline_images.OfflineBuildError, match="no apt source for Debian trixie"):
        offline_images.host_debian_mirror("trixie", sources)


def test_the_cache_key_changes_with_any_input() -> None:
    assert offline_images._key("bookworm", ("python3",), "m") != offline_images._key("bookworm", ("python3",), "n")
    assert offline_images._key("a", 1) == offline_images._key("a", 1)
