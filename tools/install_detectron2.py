#!/usr/bin/env python
"""Install Detectron2 (pure-Python, no ``_C``) into the current environment.

Detectron2 is not published on PyPI. The registry does ship one wheel whose
``detectron2/`` sources are upstream Detectron2 at commit
a59f05630a8f205756064244bf5beb8661f96180 (2024-04-17): ``sal-detectron2==0.7.2``.
That wheel cannot be installed as it is (it is tagged cp310, carries a compiled
``_C`` for CPython 3.10 + CUDA 12, a top-level ``tools`` package, and metadata
that pins ``numpy<2`` and omits ``fvcore``/``iopath``). This script:

1. downloads exactly that file by name and version with pip,
2. verifies its sha256,
3. repacks only the ``detectron2`` package (minus ``_C``) into a new
   ``py3-none-any`` wheel named ``detectron2`` with corrected dependencies,
4. installs that wheel with pip, so pip and ``importlib.metadata`` see it.

Nothing inside site-packages is edited afterwards. Run it with the Python of the
environment to install into::

    .venv/bin/python tools/install_detectron2.py

Users with a network and a compiler can instead build upstream Detectron2 from
source (with ``_C``); see docs/install.md.
"""
from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import io
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

SOURCE_DIST = "sal-detectron2"
SOURCE_VERSION = "0.7.2"
SOURCE_FILE = "sal_detectron2-0.7.2-cp310-none-any.whl"
SOURCE_SHA256 = "491af0c7f79bdb2d178e46f6cb16a97c4ac968d45c41ea3f6b6435d59bbee561"
UPSTREAM_COMMIT = "a59f05630a8f205756064244bf5beb8661f96180"

#: Version of the repacked distribution: upstream's version at that commit, with a
#: local label naming the route, so ``hcmeasure doctor`` can tell the routes apart.
REPACKED_VERSION = "0.6+sal.0.7.2"
REPACKED_NAME = "detectron2"

#: Runtime dependencies of the ``detectron2`` sources (upstream setup.py), with the
#: ``numpy<2`` pin removed and the two missing imports (fvcore, iopath) added.
REQUIRES = [
    "Pillow>=7.1",
    "matplotlib",
    "pycocotools>=2.0.2",
    "termcolor>=1.1",
    "yacs>=0.1.8",
    "tabulate",
    "cloudpickle",
    "tqdm>4.29.0",
    "tensorboard",
    "fvcore>=0.1.5,<0.1.6",
    "iopath>=0.1.7,<0.1.10",
    "omegaconf>=2.1,<2.4",
    "hydra-core>=1.1",
    "black",
    "packaging",
    # detectron2.model_zoo imports pkg_resources, which setuptools removed in 81.
    "setuptools<81",
]


class InstallError(RuntimeError):
    pass


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_source_wheel(cache_dir: Path) -> Path:
    """Fetch the sal-detectron2 wheel with pip (by name and version), unless cached."""
    target = cache_dir / SOURCE_FILE
    if target.exists() and sha256_of(target) == SOURCE_SHA256:
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        # The wheel is tagged cp310; ask pip for that tag explicitly. It is only
        # downloaded, never installed as it is.
        "--python-version", "3.10", "--implementation", "cp",
        "--dest", str(cache_dir), f"{SOURCE_DIST}=={SOURCE_VERSION}",
    ]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    if not target.exists():
        raise InstallError(f"pip did not produce {target}; check the registry and retry.")
    return target


def verify(path: Path) -> None:
    actual = sha256_of(path)
    if actual != SOURCE_SHA256:
        raise InstallError(
            f"{path}: sha256 is {actual}, expected {SOURCE_SHA256}. "
            "The file is not the verified sal-detectron2 0.7.2 wheel; delete it and retry."
        )


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def keep_member(name: str) -> bool:
    """Only the ``detectron2`` package, without compiled extensions."""
    if not name.startswith("detectron2/"):
        return False
    base = name.rsplit("/", 1)[-1]
    return not (base.startswith("_C") and (base.endswith(".so") or base.endswith(".pyd")))


def metadata_text() -> str:
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {REPACKED_NAME}",
        f"Version: {REPACKED_VERSION}",
        "Summary: Detectron2 Python sources (upstream commit "
        f"{UPSTREAM_COMMIT}) repacked by hcmeasure from {SOURCE_DIST}=={SOURCE_VERSION}, "
        "without the compiled _C extension",
        "Home-page: https://github.com/facebookresearch/detectron2",
        "License: Apache-2.0",
        "Requires-Python: >=3.8",
    ]
    lines += [f"Requires-Dist: {r}" for r in REQUIRES]
    return "\n".join(lines) + "\n"


def repack(source: Path, out_dir: Path) -> Path:
    """Write ``detectron2-<ver>-py3-none-any.whl`` holding only ``detectron2/``."""
    dist_info = f"{REPACKED_NAME}-{REPACKED_VERSION}.dist-info"
    out = out_dir / f"{REPACKED_NAME}-{REPACKED_VERSION}-py3-none-any.whl"
    records: list[tuple[str, str, int]] = []
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        licence = None
        for info in zin.infolist():
            if info.filename.endswith("dist-info/LICENSE"):
                licence = zin.read(info)
            if info.is_dir() or not keep_member(info.filename):
                continue
            data = zin.read(info)
            zout.writestr(info.filename, data)
            records.append((info.filename, _record_hash(data), len(data)))
        extra = {
            f"{dist_info}/METADATA": metadata_text().encode(),
            f"{dist_info}/WHEEL": (
                "Wheel-Version: 1.0\nGenerator: hcmeasure install_detectron2\n"
                "Root-Is-Purelib: true\nTag: py3-none-any\n"
            ).encode(),
            f"{dist_info}/top_level.txt": b"detectron2\n",
        }
        if licence is not None:
            extra[f"{dist_info}/LICENSE"] = licence
        for name, data in extra.items():
            zout.writestr(name, data)
            records.append((name, _record_hash(data), len(data)))
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        for name, digest, size in records:
            writer.writerow([name, digest, size])
        writer.writerow([f"{dist_info}/RECORD", "", ""])
        zout.writestr(f"{dist_info}/RECORD", buf.getvalue())
    return out


def install(wheel: Path) -> None:
    cmd = [sys.executable, "-m", "pip", "install", "--force-reinstall", "--no-deps", str(wheel)]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    # Dependencies separately, so an existing torch/numpy is not reinstalled.
    cmd = [sys.executable, "-m", "pip", "install", *REQUIRES]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--cache-dir", type=Path,
        default=Path(os.environ.get("HCMEASURE_CACHE", Path.home() / ".cache" / "hcmeasure")),
        help="where the downloaded wheel is kept (default: ~/.cache/hcmeasure)",
    )
    parser.add_argument("--build-only", action="store_true",
                        help="write the repacked wheel to --cache-dir and stop")
    args = parser.parse_args(argv)
    try:
        source = download_source_wheel(args.cache_dir)
        verify(source)
        print(f"verified {source.name} sha256={SOURCE_SHA256}", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            wheel = repack(source, Path(tmp) if not args.build_only else args.cache_dir)
            print(f"repacked -> {wheel.name}", flush=True)
            if not args.build_only:
                install(wheel)
    except (InstallError, subprocess.CalledProcessError) as exc:
        print(f"install_detectron2: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
