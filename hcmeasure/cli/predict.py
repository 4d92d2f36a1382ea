"""``hcmeasure predict INPUT --out OUT``: measure HC on an image or a folder.

Writes ``OUT/measurements.csv`` (one row per image or DICOM frame, with a status),
the HC18 leaderboard ``OUT/submission.csv``, overlays ``OUT/overlays/<name>.png``
(unless ``--no-overlays``) and, with ``--report``, ``OUT/report.html``. A problem
with one image goes into its row and the run continues; all files are written
atomically.

DICOM files (see :mod:`hcmeasure.io.dicom`) carry their own calibration; the
pixel size of each row comes from, in order (:mod:`hcmeasure.io.calibration`):
``--pixel-size`` / ``--pixel-size-csv`` (an override; a disagreement with the file's
calibration is reported), the ultrasound region containing the head, ``PixelSpacing``,
``ImagerPixelSpacing``. The source is written in ``pixel_size_source``. Each head is
measured once into a :class:`~hcmeasure.measurement.record.MeasuredHead` (HC, biometry,
status, trust, GA, known-GA centile; non-square pixels in millimetre space), and its row,
overlay and report entry all show that record. Multi-frame files give one row per frame,
named ``file.dcm#N`` (N from 1), unless ``--frame N``.

Each file's rows are kept in ``OUT/journal/`` as soon as it is measured, and the final
tables are written from there (:mod:`hcmeasure.cli.predict_journal`): ``--resume``
measures only what a stopped run left, and ``--num-processes`` / ``--num-machines``
share the files between processes (:mod:`hcmeasure.cli.predict_launch`).
"""
from __future__ import annotations

import contextlib
import sys
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from ..io.biometry_outputs import diameter_segments_px, known_ga_messages
from ..io.calibration import resolve_calibration
from ..io.dicom import DicomFrame, is_dicom_file, read_dicom
from ..io.images import IMAGE_EXTENSIONS, ImageReadError, list_image_names, read_scan
from ..io.overlays import draw_overlay, overlay_caption, overlay_filename, shared_overlay_stems
from ..io.tables import (
    MEASUREMENT_COLUMNS,
    TableError,
    atomic_write_bytes,
    format_measurement,
    measurement_row,
    read_scan_info_csv,
)
from ..measurement.gestational_age import DEFAULT_FORMULA, FORMULAS
from ..measurement.growth import known_ga, resolve_known_ga
from ..measurement.head import HeadMeasurement
from ..measurement.record import MeasurementOptions, measure_head
from .common import CLIError, pixel_size_overrides
from .predict_journal import (
    FileRecord,
    JournalIndex,
    JournalWriter,
    OutLock,
    check_run_id,
    file_sha256,
    journal_rows,
    model_fingerprint,
    prepare_out,
    write_final_tables,
)
from .predict_launch import (
    add_scale_arguments,
    check_scale_arguments,
    launch_processes,
    process_device,
    set_process_threads,
    share_of,
)


def add_arguments(p):
    p.add_argument("input", type=Path,
                   help="an image file or a folder of images (DICOM, png, jpg, tif, bmp; folders may mix them)")
    p.add_argument("--out", type=Path, required=True, help="output folder (created if needed)")
    p.add_argument("--model", type=Path, default=None,
                   help="checkpoint .pth (default: the model shipped with hcmeasure)")
    p.add_argument("--config", type=Path, default=None,
                   help="config the checkpoint was trained with (default: config.yaml beside --model)")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--pixel-size-csv", type=Path, default=None,
                      help="HC18-style CSV 'filename,pixel size(mm)' giving each image's pixel size")
    size.add_argument("--pixel-size", type=float, default=None, metavar="MM",
                      help="one pixel size in mm for every image (overrides DICOM calibration)")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda when available")
    p.add_argument("--batch-size", type=int, default=None,
                   help="images per forward pass (default: 1 on CPU, where batching is slower, 4 on CUDA)")
    p.add_argument("--io-workers", type=int, default=None,
                   help="threads reading scans and writing overlays beside the network; 0 does all "
                        "of it between forward passes (default: 2 on CUDA; on CPU, scans are read "
                        "between passes and overlays written by one thread, which never runs torch)")
    p.add_argument("--flip-tta", dest="flip_tta", action="store_true", default=None,
                   help="average with the horizontally flipped image (default: as in the config)")
    p.add_argument("--no-flip-tta", dest="flip_tta", action="store_false")
    p.add_argument("--single-model", action="store_true",
                   help="with a refiner ensemble (the default model), measure with its first member only: "
                        "faster, and the interval keeps its calibration, but ensemble disagreement is not checked")
    p.add_argument("--no-overlays", action="store_true", help="do not write overlay PNGs")
    p.add_argument("--perimeter-formula", type=int, choices=(1, 2), default=2,
                   help="Ramanujan approximation for the perimeter (default 2, the more accurate)")
    p.add_argument("--ga-formula", choices=(*FORMULAS, "none"), default=DEFAULT_FORMULA,
                   help="gestational age from HC: intergrowth (INTERGROWTH-21st, default), hadlock "
                        "(Hadlock 1984) or none")
    p.add_argument("--frame", type=int, default=None, metavar="N",
                   help="measure only frame N (from 1) of multi-frame DICOM files (default: every frame)")
    p.add_argument("--keep-identifiers", action="store_true",
                   help="also write the DICOM patient/study identifiers to measurements.csv "
                        "(never written otherwise)")
    p.add_argument("--report", action="store_true", help="also write OUT/report.html (see 'hcmeasure report')")
    p.add_argument("--ga", default=None, metavar="W+D",
                   help="known gestational age of the scan(s), weeks+days (e.g. 32+4): HC z-score and "
                        "INTERGROWTH-21st centile (per image: a 'ga' column in --pixel-size-csv)")
    p.add_argument("--dicom-sr", action="store_true",
                   help="also write a DICOM Structured Report (TID 1500) per measured DICOM image to OUT/sr/")
    add_scale_arguments(p)


def resolve_model(model: Path | None, config: Path | None) -> tuple[Path, Path]:
    """(config, weights) from the flags, falling back to the shipped default model."""
    from ..predictor import default_model_paths

    if model is None:
        default = default_model_paths()
        if default is None:
            raise CLIError(
                "no --model given and no default model is installed with hcmeasure; "
                "pass --model CKPT.pth --config CFG.yaml (train one with tools/train_net.py)."
            )
        return (config or default[0]), default[1]
    if not model.is_file():
        raise CLIError(f"{model}: checkpoint not found. Pass --model with an existing .pth file.")
    if config is None:
        for candidate in (model.with_suffix(".yaml"), model.parent / "config.yaml"):
            if candidate.is_file():
                config = candidate
                break
        else:
            raise CLIError(
                f"{model}: no config given and none found beside it (config.yaml); "
                "pass --config with the YAML the model was trained with."
            )
    return config, model


def collect_inputs(path: Path) -> tuple[Path, list[str], list[str]]:
    """``(folder, image names, other names)`` of INPUT, names sorted (a file: its folder and its name)."""
    if not path.exists():
        raise CLIError(f"{path}: no such file or folder. Pass an image or a folder of images.")
    if path.is_file():
        if path.suffix.lower() not in IMAGE_EXTENSIONS and not is_dicom_file(path):
            raise CLIError(f"{path}: not an image file (expected DICOM or one of {', '.join(IMAGE_EXTENSIONS)}).")
        return path.parent, [path.name], []
    images, others = list_image_names(path)
    if not images:
        raise CLIError(
            f"{path}: the folder holds no images (DICOM, {', '.join(IMAGE_EXTENSIONS)}); "
            "point INPUT at the folder with the scans."
        )
    return path, images, others


#: Extra columns written with ``--keep-identifiers`` (DICOM keyword -> column).
IDENTIFIER_COLUMNS = {
    "PatientName": "patient_name",
    "PatientID": "patient_id",
    "PatientBirthDate": "patient_birth_date",
    "AccessionNumber": "accession_number",
    "StudyDate": "study_date",
    "StudyInstanceUID": "study_instance_uid",
}


def _load_frames(path: Path, frame: int | None = None, keep_identifiers: bool = False) -> list[DicomFrame]:
    """Every image of one input file as frames (a PNG etc. is one frame without calibration);
    ``frame``: only that frame (from 1) of a multi-frame DICOM file."""
    if is_dicom_file(path):
        return read_dicom(path, frame=frame, keep_identifiers=keep_identifiers)
    return [DicomFrame(path.name, read_scan(path))]


class InlineExecutor:
    """The part of ``ThreadPoolExecutor`` used here, running each call at once in this thread
    (on a CPU, reading and PNG encoding in parallel threads would slow the network down)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def map(self, fn, items):
        return (fn(item) for item in items)

    def submit(self, fn, *args):
        future = Future()
        try:
            future.set_result(fn(*args))
        except Exception as exc:
            future.set_exception(exc)
        return future


def _read_ahead(fn, items, pool, ahead: int = 1):
    """``fn(item)`` for each of ``items`` in order, each computed in ``pool`` while the
    caller works on the ones before (``ahead`` items ahead, so memory stays bounded)."""
    pending = deque()
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) > ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _executor(workers: int):
    return ThreadPoolExecutor(max_workers=workers) if workers else InlineExecutor()


def run(args) -> int:
    if args.batch_size is not None and args.batch_size < 1:
        raise CLIError(f"--batch-size {args.batch_size}: must be at least 1.")
    if args.io_workers is not None and args.io_workers < 0:
        raise CLIError(f"--io-workers {args.io_workers}: must be 0 or more.")
    if args.frame is not None and args.frame < 1:
        raise CLIError(f"--frame {args.frame}: frames are numbered from 1.")
    check_scale_arguments(args)
    return launch_processes(_run_process, args)


def _fingerprint(args, predictor, columns) -> dict:
    """What made the rows of a run; a resumed or repeated run into the same OUT must match it.
    An option that changes a row belongs in ``options``."""
    table = None if args.pixel_size_csv is None else file_sha256(args.pixel_size_csv)
    options = {
        "pixel_size_mm": args.pixel_size, "pixel_size_csv_sha256": table,
        "flip_tta": bool(predictor.cfg.HCMEASURE.POSTPROCESS.FLIP_TTA),
        "perimeter_formula": args.perimeter_formula, "ga_formula": args.ga_formula,
        "frame": args.frame, "keep_identifiers": bool(args.keep_identifiers), "ga": args.ga,
    }
    return {"input": str(args.input.resolve()), "model": model_fingerprint(predictor), "options": options,
            "columns": list(columns)}


def _agree(error: str | None) -> None:
    """Every process stops, with the first message, when one of them met a problem."""
    from ..engine import first_error

    error = first_error(error)
    if error:
        raise CLIError(error)


def _run_process(args) -> int:
    """One process of the run (the only one by default): measure this process's share of
    the files into the journal; process 0 then writes the tables and the report."""
    lock = OutLock(args.out)  # held by process 0 while it writes into OUT
    try:
        return _measure(args, lock)
    finally:
        lock.release()


def _measure(args, lock: OutLock) -> int:
    from detectron2.utils import comm
    from tqdm import tqdm

    from ..engine import broadcast_from_main
    from ..predictor import HeadPredictor, ModelLoadError, torch_threads_from_env

    rank, world_size = comm.get_rank(), comm.get_world_size()
    main = rank == 0
    error = plan = None
    try:
        overrides = pixel_size_overrides(args.pixel_size, args.pixel_size_csv)
        ga_arg = known_ga(args.ga, "ga_arg") if args.ga is not None else None
        if ga_arg is not None and ga_arg.status == "invalid_ga":
            raise CLIError(f"--ga: {ga_arg.message}.")
        scan_info = read_scan_info_csv(args.pixel_size_csv) if args.pixel_size_csv is not None else {}
        ga_texts = {name: info.ga for name, info in scan_info.items()}
        config, weights = resolve_model(args.model, args.config)
        if main:
            folder, names, others = collect_inputs(args.input)
    except (CLIError, TableError) as exc:
        error = str(exc)
    _agree(error)
    set_process_threads()
    torch_threads_from_env()
    try:
        predictor = HeadPredictor(config, weights, device=process_device(args.device), flip_tta=args.flip_tta,
                                  single_model=args.single_model)
    except ModelLoadError as exc:
        error = str(exc)
    _agree(error)
    options = MeasurementOptions(perimeter_formula=args.perimeter_formula,
                                 ga_formula=None if args.ga_formula == "none" else args.ga_formula,
                                 trust=predictor.trust)
    columns = list(MEASUREMENT_COLUMNS)
    if args.keep_identifiers:
        columns += list(IDENTIFIER_COLUMNS.values())
    if main:
        try:
            args.out.mkdir(parents=True, exist_ok=True)
            lock.acquire()
            run_id, note = prepare_out(args.out, _fingerprint(args, predictor, columns),
                                       resume=args.resume, overwrite=args.overwrite)
            done = JournalIndex(args.out) if args.resume else ()
            resumed = frozenset(n for n in names if n in done)
            plan = {"folder": folder, "pending": [n for n in names if n not in resumed], "run_id": run_id,
                    "shared_stems": shared_overlay_stems(names)}
            del done
            if note:
                print(f"note: {note}", file=sys.stderr)
        except CLIError as exc:
            error = str(exc)
    _agree(error)
    plan = broadcast_from_main(plan)
    _agree(None if main else check_run_id(args.out, plan["run_id"], rank))
    images = [plan["folder"] / n for n in share_of(plan["pending"], rank, world_size)]
    shared_stems = plan["shared_stems"]
    del plan

    on_gpu = predictor.cfg.MODEL.DEVICE.startswith("cuda")
    batch_size = args.batch_size or (4 if on_gpu else 1)
    io_workers = args.io_workers if args.io_workers is not None else (2 if on_gpu else 0)
    # By default on a CPU, one thread decodes the next file while the network runs on the
    # current one, and draws and encodes the overlays: none of that calls torch. Making the
    # input tensors (pre-processing) stays in this thread: torch called from a second
    # thread starts a second set of OpenMP threads that fight the network's for the cores.
    own_overlay_thread = args.io_workers is None and not on_gpu

    out = args.out
    overlay_dir = out / "overlays"
    if not args.no_overlays:
        overlay_dir.mkdir(parents=True, exist_ok=True)

    def read(path: Path):
        try:
            return path, _load_frames(path, args.frame, args.keep_identifiers), None
        except ImageReadError as exc:
            return path, None, exc

    def prepare(path: Path, frames, error):
        if frames is None:
            return path, None, error
        return path, frames, [predictor.preprocess(f.gray) for f in frames]

    def load(path: Path):
        return prepare(*read(path))

    # Files whose rows or overlays are not all done yet, in input order; each is journaled
    # as soon as it is complete (at most max_in_flight wait, so memory stays bounded).
    records: deque[FileRecord] = deque()
    max_in_flight = 2 * batch_size + 2

    def journal_done(final: bool = False):
        while records and records[0].pending == 0:
            rec = records[0]
            if not (final or len(records) > max_in_flight or all(f.done() for _, f in rec.overlays)):
                break
            for target, f in rec.overlays:
                try:
                    f.result()
                except Exception as exc:  # an overlay lost must not lose the measurements
                    rec.warnings.append(f"overlay not written to {target}: {exc}")
            journal.append(rec)
            records.popleft()

    start = time.perf_counter()
    title = "hcmeasure predict" if world_size == 1 else f"hcmeasure predict (process 0 of {world_size})"
    bar = tqdm(total=len(images), unit="file", desc=title, file=sys.stderr, disable=None if main else True)
    with JournalWriter(out, rank) as journal, _executor(io_workers) as io_pool, \
            (_executor(1) if own_overlay_thread else contextlib.nullcontext(io_pool)) as overlay_pool:
        if own_overlay_thread:
            loaded = (prepare(*r) for r in _read_ahead(read, images, overlay_pool))
        elif io_workers:
            loaded = _read_ahead(load, images, io_pool, ahead=io_workers + batch_size)
        else:
            loaded = io_pool.map(load, images)
        batch: list[tuple[Path, DicomFrame, dict, FileRecord]] = []

        def flush():
            try:
                heads = predictor.measure([b[2] for b in batch])
            except Exception as exc:  # keep going: the batch's rows say what happened
                batch[0][3].warnings.append(f"inference failed on {', '.join(b[1].name for b in batch)}: {exc!r}")
                heads = [HeadMeasurement(None, None, None, "inference_error")] * len(batch)
            for (path, frame, _, rec), head in zip(batch, heads):
                try:
                    point = (head.ellipse.cx, head.ellipse.cy) if head.ellipse is not None else None
                    calibration, note = resolve_calibration(frame.name, path.name, overrides, frame.calibrations,
                                                            point)
                    if note:
                        rec.warnings.append(note)
                    if calibration.error and head.status == "ok":
                        rec.warnings.append(f"{frame.name}: {calibration.error}")
                    info = scan_info.get(frame.name) or scan_info.get(path.name)
                    measured = measure_head(
                        frame.name, head, calibration, options, gray=frame.gray,
                        known_ga=resolve_known_ga(frame.name, path.name, ga_arg, ga_texts, frame.known_ga),
                        pregnancy=info.pregnancy if info else "")
                    row = format_measurement(measured)
                except Exception as exc:  # one row's problem never ends the run
                    rec.warnings.append(f"{frame.name}: the measurement could not be written ({exc!r})")
                    row = measurement_row(frame.name, None, None, status="measurement_error")
                for keyword, column in IDENTIFIER_COLUMNS.items():
                    if args.keep_identifiers:
                        row[column] = frame.identifiers.get(keyword, "")
                rec.rows.append(row)
                rec.pending -= 1
                if not args.no_overlays:
                    target = overlay_dir / overlay_filename(frame.name, shared_stems)
                    rec.overlays.append((target, overlay_pool.submit(
                        lambda g=frame.gray, h=head, t=overlay_caption(row), p=target, d=diameter_segments_px(row):
                        atomic_write_bytes(p, draw_overlay(g, h, t, d)))))
            batch.clear()

        for path, frames, payload in loaded:
            rec = FileRecord(path.name)
            records.append(rec)
            if frames is None:
                rec.read = False
                rec.rows.append(measurement_row(path.name, None, None, status=payload.reason))
                rec.warnings.append(str(payload))
                journal_done()
                bar.update(1)
                continue
            rec.burned_in = any(f.burned_in_annotation for f in frames)
            rec.pending = len(frames)
            for frame, inp in zip(frames, payload):
                batch.append((path, frame, inp, rec))
                if len(batch) >= batch_size:
                    flush()
            journal_done()
            bar.update(1)
        if batch:
            flush()
        journal_done(final=True)
    bar.close()
    comm.synchronize()  # every process's share is in the journal now
    if not main:
        return 0
    tables = write_final_tables(out, names, columns, resumed, row_messages=known_ga_messages)
    elapsed = time.perf_counter() - start
    for msg in tables.warnings:
        print(f"warning: {msg}", file=sys.stderr)
    if tables.burned_in and not args.no_overlays:
        print(f"warning: {len(tables.burned_in)} DICOM file(s) declare burned-in annotations (BurnedInAnnotation=YES): "
              f"their overlays may show text burned into the scan, e.g. {tables.burned_in[0]}", file=sys.stderr)
    if others:
        print(f"warning: skipped {len(others)} non-image file(s): "
              f"{', '.join(others[:5])}{' ...' if len(others) > 5 else ''}", file=sys.stderr)
    if tables.ga_outside:
        print(f"warning: {tables.ga_outside} HC value(s) outside the {FORMULAS[args.ga_formula].label} range: "
              "no gestational age given for them (see ga_status)", file=sys.stderr)
    for msg in tables.row_messages:
        print(f"warning: {msg}", file=sys.stderr)
    if args.dicom_sr:
        from .. import __version__
        from ..io.dicom_sr import SR_FOLDER, write_head_srs

        # From the journal, by process 0, as one run: one SR series per study, names unique.
        n_requests = 0

        def sr_requests():
            nonlocal n_requests
            for file, row in journal_rows(out, names, read_only=True):
                n_requests += 1
                yield folder / file, row["filename"], row

        srs, sr_problems = write_head_srs(sr_requests(), out / SR_FOLDER, algorithm_version=__version__,
                                          algorithm_parameters=[f"model={weights.parent.name}/{weights.name}"])
        for msg in sr_problems:
            print(f"warning: {msg}", file=sys.stderr)
        missing = n_requests - len(srs)
        print(f"DICOM SR: {len(srs)} written to {out / SR_FOLDER}"
              + (f", {missing} image(s) without one (see the warnings)" if missing else ""))
    summary = ", ".join(f"{n} {s}" for s, n in tables.counts.most_common())
    new = tables.n_rows_new
    pace = f" ({elapsed / new:.2f} s/image)" if new else ""
    earlier = f" and took {tables.n_rows - new} from the journal of an earlier run" if tables.n_rows > new else ""
    print(f"measured {new} image(s) in {elapsed:.2f} s{pace}{earlier}: {summary} -> {out / 'measurements.csv'}")
    if args.report:
        from ..report import write_report

        report = write_report(out)
        print(f"report -> {report}")
    return 0
