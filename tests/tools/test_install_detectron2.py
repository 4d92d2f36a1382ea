"""The Detectron2 install route: verified download, repacked wheel, visible distribution."""
import importlib.metadata as md
import zipfile
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def installer(load_tool):
    return load_tool("install_detectron2")


def test_installed_distribution_holds_only_the_detectron2_package():
    files = [str(f) for f in md.files("detectron2")]
    top = {f.split("/")[0] for f in files}
    assert top == {"detectron2", f"detectron2-{md.version('detectron2')}.dist-info"}
    assert not any(Path(f).name.startswith("_C") for f in files)
    assert not any(f.startswith("tools/") for f in files)


def test_installed_metadata_has_the_missing_dependencies_and_no_numpy_pin():
    requires = md.requires("detectron2") or []
    names = " ".join(requires)
    assert "fvcore" in names and "iopath" in names
    assert not any(r.replace(" ", "").startswith("numpy<2") for r in requires)


def test_a_file_with_the_wrong_sha256_is_refused(installer, tmp_path):
    fake = tmp_path / installer.SOURCE_FILE
    fake.write_bytes(b"not the wheel")
    with pytest.raises(installer.InstallError, match="sha256"):
        installer.verify(fake)


def test_repack_keeps_detectron2_and_drops_C_and_tools(installer, tmp_path):
    src = tmp_path / "src.whl"
    with zipfile.ZipFile(src, "w") as z:
        z.writestr("detectron2/__init__.py", "__version__ = '0.7.2'\n")
        z.writestr("detectron2/_C.cpython-310-x86_64-linux-gnu.so", b"\x7fELF")
        z.writestr("tools/__init__.py", "")
        z.writestr("sal_detectron2-0.7.2.dist-info/LICENSE", "Apache")
    out = installer.repack(src, tmp_path)
    names = zipfile.ZipFile(out).namelist()
    assert "detectron2/__init__.py" in names
    assert not any("_C" in n for n in names) and not any(n.startswith("tools/") for n in names)
    meta = zipfile.ZipFile(out).read(f"detectron2-{installer.REPACKED_VERSION}.dist-info/METADATA").decode()
    assert "Name: detectron2" in meta and "Requires-Dist: fvcore" in meta and "numpy<2" not in meta
    assert out.name.endswith("-py3-none-any.whl")
