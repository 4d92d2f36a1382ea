"""HC18 (fetal head circumference) data: reading, conversion to COCO, Detectron2 registration.

Layout of an HC18 folder (the public release, or a subset of it)::

    ROOT/training_set/NNN_HC.png              ultrasound image (8-bit greyscale)
    ROOT/training_set/NNN_HC_Annotation.png   head outline: an ellipse ring 2-3 px thick
    ROOT/training_set_pixel_size_and_HC.csv   filename, pixel size (mm), reference HC (mm)
    ROOT/test_set/NNN_HC.png
    ROOT/test_set_pixel_size.csv              filename, pixel size (mm)

Later frames of one examination are named ``NNN_2HC.png`` .. ``NNN_4HC.png``.

Each annotation ring is turned into an ellipse with
``fit_ellipse(ring, kind="outline")`` (the ellipse through the middle of the
ring, where the reference HC was measured), and the *filled* ellipse becomes
the instance segmentation, written as a polygon.

Coordinates. hcmeasure puts pixel centres at integer coordinates (see
:mod:`hcmeasure.measurement.ellipse`); COCO, pycocotools and Detectron2 let
pixel ``(r, c)`` cover ``[c, c+1) x [r, r+1)``, so its centre is at
``(c + 0.5, r + 0.5)``. Polygons and boxes written here (COCO JSON and
Detectron2 dicts) are therefore the hcmeasure ellipse shifted by +0.5 in x and
y, and pycocotools' ``annToMask`` gives back ``ellipse_mask(ellipse, shape)``.
The ``ellipse`` fields stay in hcmeasure's frame.

Train/validation split. Frames of one examination can be near duplicates, so
the split is by examination number (the digits before the first underscore):
an examination is in ``val`` when the first 8 bytes of the SHA-256 of its
number written in decimal (``"10"`` for ``010_2HC.png``), read as a big-endian
integer and divided by 2**64, are at least 0.8 (:data:`VAL_FRACTION`). This
depends on nothing but the number, so it is the same on any subset of HC18. On
the 809 images of the shared copy it puts 120 of 645 examinations
(158 images) in ``val``.

Cross-validation. Five folds over every labelled image, again by examination: an
examination is in fold ``floor(5 * fraction)`` (:func:`fold_of`), so fold 4 is
``hc18_val``. ``hc18_cv5_f{k}_val`` holds fold k and ``hc18_cv5_f{k}_train`` the other four.

Detectron2 datasets registered on import: ``hc18_train``, ``hc18_val``, ``hc18_all``,
``hc18_cv5_f{0..4}_{train,val}`` (images with annotations) and ``hc18_test`` (images
and pixel sizes only). The root is
``$HCMEASURE_HC18_ROOT``, else ``../shared/data/hc18`` beside the repository,
else ``../shared/data/hc18`` from the current directory; it is looked up when a
dataset is loaded, not on import. Fitting all rings takes a while (10-20 s
for 809 images on one CPU core), so the fitted ellipses are cached as JSON under
``$HCMEASURE_CACHE/hc18`` (default ``~/.cache/hcmeasure/hc18``), in a folder
keyed by the root's path, the CSV's size and modification time, the
``training_set/`` folder's modification time and :data:`CACHE_FORMAT`.
Changing a file in place without touching the CSV or adding/removing files is
not detected: delete the cache folder then.

The dataset dicts are in Detectron2's standard format (polygons, ``XYWH_ABS`` boxes,
``thing_dataset_id_to_contiguous_id`` in the metadata), so ``COCOEvaluator`` converts a
dataset to COCO itself (``convert_to_coco_json``, into its output folder); the metadata
names no ``json_file``. :func:`write_coco_json` (``hcmeasure convert-hc18``) writes a
COCO JSON with HC18's own fields (pixel size, reference HC, ellipse).
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image

from ..io.images import ImageReadError, read_scan
from ..io.tables import TableError, atomic_write_bytes, read_pixel_size_csv, read_reference_hc_csv
from ..measurement.ellipse import Ellipse, EllipseFit, EllipseFitError, fit_ellipse

__all__ = [
    "ENV_ROOT",
    "ENV_CACHE",
    "TRAIN_CSV",
    "TEST_CSV",
    "CATEGORY_NAME",
    "COCO_CATEGORY_ID",
    "VAL_FRACTION",
    "POLYGON_POINTS",
    "DATASET_NAMES",
    "HC18Error",
    "HC18Image",
    "exam_id",
    "frame_number",
    "image_id_of",
    "split_of",
    "fold_of",
    "CV_FOLDS",
    "default_root",
    "resolve_root",
    "default_cache_dir",
    "fit_ring",
    "read_training_set",
    "read_test_set",
    "coco_polygon",
    "to_coco_dict",
    "write_coco_json",
    "to_dataset_dicts",
    "load_hc18_dicts",
    "register_hc18",
]

logger = logging.getLogger(__name__)

ENV_ROOT = "HCMEASURE_HC18_ROOT"
ENV_CACHE = "HCMEASURE_CACHE"
TRAIN_DIR = "training_set"
TEST_DIR = "test_set"
TRAIN_CSV = "training_set_pixel_size_and_HC.csv"
TEST_CSV = "test_set_pixel_size.csv"
ANNOTATION_SUFFIX = "_Annotation.png"

CATEGORY_NAME = "fetal_head"
#: Category id in COCO JSON; Detectron2 dicts use the contiguous id 0.
COCO_CATEGORY_ID = 1
#: Share of examinations (by hash of their number) in the validation split.
VAL_FRACTION = 0.2
#: Vertices of the polygon written for each filled ellipse.
POLYGON_POINTS = 256
#: Bump when the cached content or its meaning changes.
CACHE_FORMAT = 1

#: Folds of the cross-validation over every labelled image (by examination).
CV_FOLDS = 5
DATASET_NAMES = {"hc18_train": "train", "hc18_val": "val", "hc18_test": "test", "hc18_all": "all"}
DATASET_NAMES.update(
    {f"hc18_cv{CV_FOLDS}_f{k}_{part}": f"cv{CV_FOLDS}_f{k}_{part}" for k in range(CV_FOLDS) for part in ("train", "val")}
)

_NAME_RE = re.compile(r"^(\d+)_(\d*)HC\.png$", re.IGNORECASE)
_CV_SPLIT_RE = re.compile(r"^cv(\d+)_f(\d+)_(train|val)$")
_MAX_LISTED = 10


class HC18Error(ValueError):
    """HC18 data cannot be used; the message names the file or folder and the fix."""


# --------------------------------------------------------------------------- names


def exam_id(filename) -> int:
    """Examination number of an HC18 file: the digits before the first underscore.

    ``"010_2HC.png"`` -> 10. Accepts a path. Raises ``ValueError`` when the name
    does not start with digits followed by an underscore.
    """
    name = Path(filename).name
    head, sep, _ = name.partition("_")
    if not sep or not head.isdigit():
        raise ValueError(f"{name!r} is not an HC18 file name (expected digits, '_', e.g. '010_2HC.png')")
    return int(head)


def frame_number(filename) -> int:
    """Frame of an examination: 1 for ``NNN_HC.png``, k for ``NNN_kHC.png``."""
    name = Path(filename).name
    m = _NAME_RE.match(name)
    if not m:
        raise ValueError(f"{name!r} is not an HC18 image name (expected NNN_HC.png or NNN_kHC.png)")
    return int(m.group(2)) if m.group(2) else 1


def image_id_of(filename) -> int:
    """Integer image id: ``10 * exam + frame`` (``010_2HC.png`` -> 102, ``000_HC.png`` -> 1)."""
    frame = frame_number(filename)
    if not 1 <= frame <= 9:
        raise ValueError(f"{Path(filename).name!r}: frame number {frame} is outside 1..9")
    return 10 * exam_id(filename) + frame


def _exam_hash_fraction(exam: int) -> float:
    digest = hashlib.sha256(str(int(exam)).encode("ascii")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_of(filename) -> str:
    """``"train"`` or ``"val"`` for an HC18 image name (by examination; see module docstring)."""
    return "val" if _exam_hash_fraction(exam_id(filename)) >= 1.0 - VAL_FRACTION else "train"


def fold_of(filename, num_folds: int = CV_FOLDS) -> int:
    """Cross-validation fold (0 .. num_folds-1) of an HC18 image, by examination: the
    examination's hash fraction (see module docstring) times ``num_folds``, rounded down.
    All frames of one examination share a fold; with 5 folds, fold 4 is ``hc18_val``."""
    return min(int(_exam_hash_fraction(exam_id(filename)) * num_folds), num_folds - 1)


def _in_split(filename, split: str) -> bool:
    if split == "all":
        return True
    if split in ("train", "val"):
        return split_of(filename) == split
    m = _CV_SPLIT_RE.match(split)
    if not m:
        raise ValueError(
            f"split must be 'train', 'val', 'all' or 'cv<K>_f<k>_train/val', got {split!r}"
        )
    num_folds, fold, part = int(m.group(1)), int(m.group(2)), m.group(3)
    if not 0 <= fold < num_folds:
        raise ValueError(f"split {split!r}: fold {fold} is outside 0..{num_folds - 1}")
    return (fold_of(filename, num_folds) == fold) == (part == "val")


# ---------------------------------------------------------------------- locations


def default_root() -> Path:
    """Where the HC18 data is looked for (it may not exist): ``$HCMEASURE_HC18_ROOT``,
    else ``../shared/data/hc18`` beside the repository, else ``../shared/data/hc18``
    from the current directory."""
    env = os.environ.get(ENV_ROOT)
    if env:
        return Path(env).expanduser()
    beside_repo = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "hc18"
    if beside_repo.is_dir():
        return beside_repo
    return Path.cwd().parent / "shared" / "data" / "hc18"


def resolve_root(root=None) -> Path:
    """The HC18 folder to read: ``root`` if given, else :func:`default_root`. Raises
    :class:`HC18Error` (naming ``HCMEASURE_HC18_ROOT``) when the folder does not exist."""
    if root is not None:
        path = Path(root).expanduser()
        how = "given"
    else:
        path = default_root()
        how = f"from ${ENV_ROOT}" if os.environ.get(ENV_ROOT) else f"default; ${ENV_ROOT} is not set"
    if not path.is_dir():
        raise HC18Error(
            f"HC18 data folder {path} ({how}) does not exist. Set {ENV_ROOT} to the folder "
            f"that holds {TRAIN_DIR}/, {TEST_DIR}/, {TRAIN_CSV} and {TEST_CSV}."
        )
    return path


def default_cache_dir() -> Path:
    """``$HCMEASURE_CACHE`` or ``~/.cache/hcmeasure``."""
    return Path(os.environ.get(ENV_CACHE) or "~/.cache/hcmeasure").expanduser()


def _source_key(csv_path: Path, image_dir: Path) -> tuple[dict, str]:
    csv_stat = csv_path.stat()
    stamp = {
        "format": CACHE_FORMAT,
        "root": str(csv_path.parent.resolve()),
        "csv": csv_path.name,
        "csv_size": csv_stat.st_size,
        "csv_mtime_ns": csv_stat.st_mtime_ns,
        "image_dir_mtime_ns": image_dir.stat().st_mtime_ns,
    }
    key = hashlib.sha256(json.dumps(stamp, sort_keys=True).encode()).hexdigest()[:20]
    return stamp, key


# ---------------------------------------------------------------------- records


@dataclass(frozen=True)
class HC18Image:
    """One HC18 image; annotation fields are ``None`` for test images."""

    filename: str
    image_path: Path
    width: int
    height: int
    pixel_size_mm: float
    annotation_path: Path | None = None
    hc_mm: float | None = None
    ellipse: Ellipse | None = None
    """Ellipse fitted to the annotation ring, in hcmeasure's pixel-centre frame."""
    fit_iou: float | None = None
    """IoU of the filled ring and the fitted ellipse (how well the ring is an ellipse).
    Near 0 for the few rings cut open by the image border, which cannot be filled."""

    @property
    def exam_id(self) -> int:
        return exam_id(self.filename)

    @property
    def image_id(self) -> int:
        return image_id_of(self.filename)

    @property
    def split(self) -> str:
        return split_of(self.filename)


def _ellipse_to_json(e: Ellipse) -> dict:
    return {"cx": e.cx, "cy": e.cy, "a": e.a, "b": e.b, "angle": e.angle}


def _raise_problems(what: str, problems: Sequence[str]) -> None:
    if not problems:
        return
    shown = "\n  ".join(problems[:_MAX_LISTED])
    more = f"\n  ... and {len(problems) - _MAX_LISTED} more" if len(problems) > _MAX_LISTED else ""
    raise HC18Error(f"{what} ({len(problems)} problem(s)):\n  {shown}{more}")


def fit_ring(ring: np.ndarray) -> EllipseFit:
    """``fit_ellipse(ring, kind="outline")`` computed on the ring's bounding box
    (plus a 2-pixel margin) and moved back to image coordinates.

    The fit only sees the ring's pixels, so the crop gives the same ellipse (to
    float32 rounding, ~1e-5 px) in about half the time.
    """
    ring = np.asarray(ring) > 0
    rows = np.flatnonzero(ring.any(axis=1))
    cols = np.flatnonzero(ring.any(axis=0))
    if rows.size == 0:
        raise EllipseFitError("mask is empty")
    margin = 2
    y0, y1 = max(0, rows[0] - margin), min(ring.shape[0], rows[-1] + margin + 1)
    x0, x1 = max(0, cols[0] - margin), min(ring.shape[1], cols[-1] + margin + 1)
    fit = fit_ellipse(ring[y0:y1, x0:x1], kind="outline")
    e = fit.ellipse
    moved = Ellipse(e.cx + float(x0), e.cy + float(y0), e.a, e.b, e.angle)
    return EllipseFit(ellipse=moved, iou=fit.iou, kind=fit.kind, num_points=fit.num_points)


def _image_size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as im:
            return im.size  # (width, height), read from the header only
    except (OSError, ValueError, SyntaxError) as exc:
        raise HC18Error(f"{path}: not a readable image ({exc}). Replace it with the HC18 original.") from exc


def _list_images(folder: Path) -> list[str]:
    return sorted(
        p.name
        for p in folder.iterdir()
        if p.is_file()
        and not p.name.startswith(".")
        and p.suffix.lower() == ".png"
        and not p.name.endswith(ANNOTATION_SUFFIX)
    )


def _check_layout(root: Path, sub: str, csv_name: str) -> tuple[Path, Path]:
    if not root.is_dir():
        raise HC18Error(
            f"HC18 data folder {root} does not exist. Pass the folder that holds {sub}/ and {csv_name}."
        )
    folder, csv_path = root / sub, root / csv_name
    if not folder.is_dir():
        hint = ""
        if root.name == sub or (root.parent / csv_name).is_file():
            hint = f" It looks like you passed {sub}/ itself: pass its parent, {root.parent}."
        raise HC18Error(f"{folder}: folder not found. The HC18 folder must hold {sub}/ next to {csv_name}.{hint}")
    if not csv_path.is_file():
        raise HC18Error(
            f"{csv_path}: file not found. The HC18 folder must hold {csv_name} next to {sub}/ "
            "(as in the official release)."
        )
    return folder, csv_path


def _check_listing(csv_path: Path, folder: Path, listed: Iterable[str]) -> list[str]:
    """Problems where the CSV and the image folder disagree."""
    listed = list(listed)
    on_disk = set(_list_images(folder))
    problems = []
    for name in listed:
        if name not in on_disk:
            problems.append(f"{folder / name}: listed in {csv_path.name} but the image does not exist")
    for name in sorted(on_disk - set(listed)):
        problems.append(f"{folder / name}: image has no row in {csv_path} (add its pixel size there, or remove it)")
    for name in listed:
        try:
            image_id_of(name)
        except ValueError as exc:
            problems.append(f"{csv_path}: {exc}")
    return problems


def _scan_training_set(root: Path, folder: Path, csv_path: Path) -> list[HC18Image]:
    try:
        reference = read_reference_hc_csv(csv_path)
    except TableError as exc:
        raise HC18Error(str(exc)) from exc
    if not reference:
        raise HC18Error(f"{csv_path}: no image rows. It needs one row per image of {folder}.")
    names = sorted(reference)
    problems = _check_listing(csv_path, folder, names)
    for name in names:
        ps, hc = reference[name]
        if not (math.isfinite(ps) and ps > 0 and math.isfinite(hc) and hc > 0):
            problems.append(f"{csv_path}: row for {name} has pixel size {ps} and HC {hc}; both must be positive")
        image = folder / name
        annotation = folder / (Path(name).stem + ANNOTATION_SUFFIX)
        if image.is_file() and not annotation.is_file():
            problems.append(
                f"{annotation}: annotation not found for image {image} "
                f"(each X.png needs X{ANNOTATION_SUFFIX} beside it)"
            )
    _raise_problems(f"HC18 training set {root} is incomplete", problems)

    logger.info("Fitting ellipses to %d HC18 annotation rings in %s", len(names), folder)
    out, problems = [], []
    for name in names:
        ps, hc = reference[name]
        image = folder / name
        annotation = folder / (Path(name).stem + ANNOTATION_SUFFIX)
        try:
            width, height = _image_size(image)
            ring = read_scan(annotation)
        except HC18Error as exc:
            problems.append(str(exc))
            continue
        except ImageReadError as exc:
            problems.append(f"{exc} (replace it with the HC18 original)")
            continue
        if ring.shape != (height, width):
            problems.append(
                f"{annotation}: size {ring.shape[1]}x{ring.shape[0]} differs from its image "
                f"{image.name} ({width}x{height}); an annotation must match its image"
            )
            continue
        try:
            fit = fit_ring(ring)
        except EllipseFitError as exc:
            problems.append(f"{annotation}: no ellipse can be fitted to the outline ({exc})")
            continue
        out.append(
            HC18Image(
                filename=name,
                image_path=image,
                width=int(width),
                height=int(height),
                pixel_size_mm=float(ps),
                annotation_path=annotation,
                hc_mm=float(hc),
                ellipse=fit.ellipse,
                fit_iou=float(fit.iou),
            )
        )
    _raise_problems(f"HC18 annotations in {folder} cannot be used", problems)
    return out


def _records_from_cache(data: dict, folder: Path) -> list[HC18Image]:
    return [
        HC18Image(
            filename=r["file_name"],
            image_path=folder / r["file_name"],
            width=int(r["width"]),
            height=int(r["height"]),
            pixel_size_mm=float(r["pixel_size_mm"]),
            annotation_path=folder / (Path(r["file_name"]).stem + ANNOTATION_SUFFIX),
            hc_mm=float(r["hc_mm"]),
            ellipse=Ellipse(**r["ellipse"]),
            fit_iou=float(r["fit_iou"]),
        )
        for r in data["images"]
    ]


def _cache_folder(cache_dir, key: str) -> Path:
    base = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return base / "hc18" / key


def read_training_set(root=None, *, cache: bool = True, cache_dir=None) -> list[HC18Image]:
    """All annotated images of ``root/training_set`` (sorted by name), each with the
    ellipse fitted to its ring, the pixel size and reference HC from the CSV, and
    its size read from the image file.

    With ``cache`` the fitted ellipses are read from / written to
    ``cache_dir`` (default :func:`default_cache_dir`). Raises :class:`HC18Error`
    listing every problem (missing folder or CSV, image without annotation or
    CSV row, unreadable or empty annotation, size mismatch).
    """
    root = resolve_root(root)
    folder, csv_path = _check_layout(root, TRAIN_DIR, TRAIN_CSV)
    stamp, key = _source_key(csv_path, folder)
    cache_file = _cache_folder(cache_dir, key) / "training_set.json"
    if cache:
        try:
            data = json.loads(cache_file.read_text(encoding="utf-8"))
            if data.get("source") == stamp:
                return _records_from_cache(data, folder)
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning("Ignoring unreadable HC18 cache %s (%s); refitting.", cache_file, exc)
    records = _scan_training_set(root, folder, csv_path)
    if cache:
        payload = {
            "source": stamp,
            "images": [
                {
                    "file_name": r.filename,
                    "width": r.width,
                    "height": r.height,
                    "pixel_size_mm": r.pixel_size_mm,
                    "hc_mm": r.hc_mm,
                    "ellipse": _ellipse_to_json(r.ellipse),
                    "fit_iou": r.fit_iou,
                }
                for r in records
            ],
        }
        try:
            atomic_write_bytes(cache_file, json.dumps(payload).encode("utf-8"))
        except OSError as exc:
            logger.warning(
                "Cannot write the HC18 cache %s (%s); set %s to a writable folder.", cache_file, exc, ENV_CACHE
            )
    return records


def read_test_set(root=None) -> list[HC18Image]:
    """Images of ``root/test_set`` (sorted by name) with their pixel sizes and sizes."""
    root = resolve_root(root)
    folder, csv_path = _check_layout(root, TEST_DIR, TEST_CSV)
    try:
        sizes = read_pixel_size_csv(csv_path)
    except TableError as exc:
        raise HC18Error(str(exc)) from exc
    names = sorted(sizes)
    problems = _check_listing(csv_path, folder, names)
    problems += [f"{csv_path}: {name}: {sizes[name].error}" for name in names if sizes[name].error]
    _raise_problems(f"HC18 test set {root} is incomplete", problems)
    out = []
    for name in names:
        width, height = _image_size(folder / name)
        out.append(HC18Image(name, folder / name, int(width), int(height), float(sizes[name].value_mm)))
    return out


# ------------------------------------------------------------------- conversion


def _clip_to_rectangle(points: np.ndarray, width: float, height: float) -> np.ndarray:
    """Sutherland-Hodgman clipping of a polygon ``(n, 2)`` to ``[0, width] x [0, height]``."""
    if len(points) and points.min() >= 0 and points[:, 0].max() <= width and points[:, 1].max() <= height:
        return points
    poly = [tuple(p) for p in points]
    for axis, bound, keep_below in ((0, 0.0, False), (0, width, True), (1, 0.0, False), (1, height, True)):
        if not poly:
            break

        def inside(p):
            return p[axis] <= bound if keep_below else p[axis] >= bound

        def cross(p, q):
            t = (bound - p[axis]) / (q[axis] - p[axis])
            other = 1 - axis
            pt = [0.0, 0.0]
            pt[axis] = bound
            pt[other] = p[other] + t * (q[other] - p[other])
            return tuple(pt)

        clipped = []
        for i, cur in enumerate(poly):
            prev = poly[i - 1]
            if inside(cur):
                if not inside(prev):
                    clipped.append(cross(prev, cur))
                clipped.append(cur)
            elif inside(prev):
                clipped.append(cross(prev, cur))
        poly = clipped
    return np.asarray(poly, dtype=np.float64).reshape(-1, 2)


def coco_polygon(ellipse: Ellipse, width: int, height: int, num_points: int = POLYGON_POINTS) -> list[float]:
    """The filled ellipse as a flat COCO polygon ``[x0, y0, x1, y1, ...]``.

    Vertices are shifted by +0.5 into COCO's frame, clipped to the image
    ``[0, width] x [0, height]`` and rounded to 0.001 px. The polygon's
    vertices lie slightly outside the ellipse so that its area equals the
    ellipse's (an inscribed polygon would be a little small).
    """
    step = 2 * math.pi / num_points
    k = math.sqrt(step / math.sin(step))  # area of the inscribed n-gon is pi a b sin(step) / step
    grown = Ellipse(ellipse.cx, ellipse.cy, ellipse.a * k, ellipse.b * k, ellipse.angle)
    pts = _clip_to_rectangle(grown.points(num_points) + 0.5, float(width), float(height))
    if len(pts) < 3:
        raise ValueError(f"ellipse {ellipse} lies outside the {width}x{height} image")
    return [round(float(v), 3) for v in pts.ravel()]


def _polygon_box_area(polygon: Sequence[float]) -> tuple[list[float], float]:
    xy = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    x, y = xy[:, 0], xy[:, 1]
    x0, y0 = float(x.min()), float(y.min())
    box = [round(x0, 3), round(y0, 3), round(float(x.max()) - x0, 3), round(float(y.max()) - y0, 3)]
    area = 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))
    return box, round(area, 3)


def _select(records: Sequence[HC18Image], split: str) -> list[HC18Image]:
    return [r for r in records if _in_split(r.filename, split)]


def _package_version() -> str:
    try:
        from importlib.metadata import version

        return version("hcmeasure")
    except Exception:  # not installed as a distribution
        return "unknown"


def to_coco_dict(records: Sequence[HC18Image], *, description: str = "") -> dict:
    """COCO instances dict: category ``fetal_head`` (id 1), one image entry per record
    (real size, plus ``pixel_size_mm``, ``hc_mm``, ``exam_id`` and, when annotated,
    ``ellipse`` in hcmeasure's frame) and one polygon annotation per annotated record.
    Test records (no ellipse) give images only and no ``annotations`` key."""
    image_roots = sorted({str(r.image_path.parent.resolve()) for r in records})
    coco = {
        "info": {
            "description": description or "HC18 fetal head outlines as filled ellipses",
            "url": "https://zenodo.org/records/1327317",
            "version": f"hcmeasure {_package_version()}",
            "year": 2018,
            "contributor": "van den Heuvel et al., PLoS ONE 13(8): e0200412 (HC18)",
            "image_root": image_roots[0] if len(image_roots) == 1 else image_roots,
            "coordinates": "COCO: pixel (r, c) covers [c, c+1) x [r, r+1); 'ellipse' fields use "
            "hcmeasure's frame (pixel centres at integers)",
        },
        "licenses": [{"id": 1, "name": "CC BY 4.0", "url": "https://creativecommons.org/licenses/by/4.0/"}],
        "categories": [{"id": COCO_CATEGORY_ID, "name": CATEGORY_NAME, "supercategory": CATEGORY_NAME}],
        "images": [],
    }
    annotations = []
    for r in records:
        image = {
            "id": r.image_id,
            "file_name": r.filename,
            "width": r.width,
            "height": r.height,
            "license": 1,
            "pixel_size_mm": r.pixel_size_mm,
            "exam_id": r.exam_id,
        }
        if r.ellipse is not None:
            image["hc_mm"] = r.hc_mm
            image["ellipse"] = _ellipse_to_json(r.ellipse)
            polygon = coco_polygon(r.ellipse, r.width, r.height)
            box, area = _polygon_box_area(polygon)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": r.image_id,
                    "category_id": COCO_CATEGORY_ID,
                    "segmentation": [polygon],
                    "area": area,
                    "bbox": box,
                    "iscrowd": 0,
                }
            )
        coco["images"].append(image)
    if any(r.ellipse is not None for r in records):
        coco["annotations"] = annotations
    return coco


def write_coco_json(records: Sequence[HC18Image], path, *, description: str = "") -> Path:
    """Write :func:`to_coco_dict` of ``records`` to ``path`` atomically."""
    path = Path(path)
    data = json.dumps(to_coco_dict(records, description=description), separators=(",", ":"))
    atomic_write_bytes(path, data.encode("utf-8"))
    return path


def to_dataset_dicts(records: Sequence[HC18Image]) -> list[dict]:
    """Detectron2 dataset dicts (standard format plus ``pixel_size_mm``, ``exam_id`` and,
    for annotated images, ``hc_mm``, ``annotation_file`` and ``ellipse`` in
    hcmeasure's frame of the original image)."""
    from detectron2.structures import BoxMode

    dicts = []
    for r in records:
        d = {
            "file_name": str(r.image_path),
            "height": r.height,
            "width": r.width,
            "image_id": r.image_id,
            "pixel_size_mm": r.pixel_size_mm,
            "exam_id": r.exam_id,
        }
        if r.ellipse is not None:
            polygon = coco_polygon(r.ellipse, r.width, r.height)
            box, _ = _polygon_box_area(polygon)
            d.update(
                hc_mm=r.hc_mm,
                annotation_file=str(r.annotation_path),
                ellipse=_ellipse_to_json(r.ellipse),
                annotations=[
                    {
                        "bbox": box,
                        "bbox_mode": BoxMode.XYWH_ABS,
                        "segmentation": [polygon],
                        "category_id": 0,
                        "iscrowd": 0,
                    }
                ],
            )
        dicts.append(d)
    return dicts


def load_hc18_dicts(root=None, split: str = "train", *, cache: bool = True, cache_dir=None) -> list[dict]:
    """Detectron2 dicts of one split: ``"train"``, ``"val"``, ``"all"`` (both), ``"test"``
    or a cross-validation part ``"cv5_f<k>_train"`` / ``"cv5_f<k>_val"``.

    ``root`` defaults to :func:`default_root`; a missing root raises
    :class:`HC18Error` naming ``HCMEASURE_HC18_ROOT``.
    """
    if split == "test":
        return to_dataset_dicts(read_test_set(root))
    _in_split("000_HC.png", split)  # an unknown split name is refused before any reading
    return to_dataset_dicts(_select(read_training_set(root, cache=cache, cache_dir=cache_dir), split))


# ------------------------------------------------------------------ registration


def register_hc18(root=None) -> None:
    """Register ``hc18_train``, ``hc18_val`` and ``hc18_test`` with Detectron2.

    ``root=None`` resolves the folder when a dataset is loaded (see
    :func:`default_root`). Calling again replaces the earlier registration.
    """
    from detectron2.data import DatasetCatalog, MetadataCatalog

    for name, split in DATASET_NAMES.items():
        if name in DatasetCatalog.list():
            DatasetCatalog.remove(name)
        if name in MetadataCatalog.list():
            MetadataCatalog.remove(name)
        DatasetCatalog.register(name, lambda split=split, root=root: load_hc18_dicts(root, split))
        MetadataCatalog.get(name).set(
            thing_classes=[CATEGORY_NAME],
            thing_dataset_id_to_contiguous_id={COCO_CATEGORY_ID: 0},
            evaluator_type="hc18",
            split=split,
        )


register_hc18()
