"""The plugin is discoverable by napari and its wheel carries the manifest and the demo."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from npe2 import PluginManifest

ROOT = Path(__file__).resolve().parents[1]


def test_installed_manifest_validates_with_imports() -> None:
    manifest = PluginManifest.from_distribution("napari-cellae")
    manifest.validate_imports()  # every python_name resolves
    assert {r.command for r in manifest.contributions.readers} == {"napari-cellae.get_reader"}
    assert [s.key for s in manifest.contributions.sample_data] == ["demo_screen"]
    assert [w.display_name for w in manifest.contributions.widgets] == ["Deep Learning Module"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return next(out.glob("napari_cellae-*.whl"))


def test_wheel_contains_manifest_and_demo(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        manifest = yaml.safe_load(archive.read("napari_cellae/napari.yaml"))
        entry_points = archive.read(
            next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        ).decode()
    # The top-level napari.yaml and sample_data/ travel inside the package.
    assert manifest == yaml.safe_load((ROOT / "napari.yaml").read_text())
    assert "napari_cellae:napari.yaml" in entry_points
    assert "cellae = napari_cellae.cli:console" in entry_points
    for name in ("demo_screen.ch5", "demo_screen_mapping.txt"):
        assert f"napari_cellae/sample_data/{name}" in names
