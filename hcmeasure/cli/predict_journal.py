"""What ``hcmeasure predict`` keeps in OUT while it runs, so that a long run loses nothing.

::

    OUT/journal/fingerprint.json    what measured the rows: model, config, input, options,
                                    columns (and the id of the run writing OUT now)
    OUT/journal/rows-rank<R>.jsonl  one line per input file, appended and synced by process R
                                    as soon as that file's rows (and overlays) are done
    OUT/journal/lock                held by the run writing into OUT (``flock``)

A kill or a power cut loses at most the files in flight; a line cut short by one is
ignored (and cut off before the next append). ``--resume`` measures the files that
have no line yet. The final ``measurements.csv`` and ``submission.csv`` are written
from the journal, in the input order, by :func:`write_final_tables` (streamed, atomic).
Results of another model, config, input or option are never mixed in: a run into an
OUT whose fingerprint differs is refused unless ``--overwrite``.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

from ..io.tables import SUBMISSION_COLUMNS, atomic_write_bytes, submission_row, write_csv_atomic
from .common import CLIError

__all__ = [
    "JOURNAL_DIR",
    "FINAL_OUTPUTS",
    "FileRecord",
    "JournalWriter",
    "JournalIndex",
    "OutLock",
    "file_sha256",
    "model_fingerprint",
    "prepare_out",
    "check_run_id",
    "remove_stale_temporaries",
    "write_final_tables",
    "journal_rows",
]

JOURNAL_DIR = "journal"
FINGERPRINT = "fingerprint.json"
#: Files of OUT written from the journal at the end of a run (removed by ``--overwrite``).
FINAL_OUTPUTS = ("measurements.csv", "submission.csv", "report.html")


@dataclass
class FileRecord:
    """The results of one input file: its rows (one per image or DICOM frame), the
    warnings it gave, whether it could be read (``read``: its rows come from the model)
    and whether it declares burned-in annotations. ``pending`` (frames not yet measured)
    and ``overlays`` (``(target, future)`` of overlay writes) are the run's bookkeeping
    and not journaled."""

    file: str
    rows: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    burned_in: bool = False
    read: bool = True
    pending: int = 0
    overlays: list = field(default_factory=list)

    def to_line(self) -> bytes:
        record = {"file": self.file, "rows": self.rows, "warnings": self.warnings, "burned_in": self.burned_in,
                  "read": self.read}
        return (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


def _journal_dir(out: Path) -> Path:
    return Path(out) / JOURNAL_DIR


def _journal_files(out: Path) -> list[Path]:
    folder = _journal_dir(out)
    return sorted(folder.glob("rows-rank*.jsonl")) if folder.is_dir() else []


class JournalWriter:
    """Appends the records of one process to ``OUT/journal/rows-rank<rank>.jsonl``, each
    written in one call and synced to disk before :meth:`append` returns."""

    def __init__(self, out: Path, rank: int):
        self.path = _journal_dir(out) / f"rows-rank{rank}.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _cut_torn_tail(self.path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)

    def append(self, record: FileRecord) -> None:
        data = record.to_line()
        while data:
            data = data[os.write(self._fd, data):]
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def _cut_torn_tail(path: Path) -> None:
    """Cut a last line that a kill left without its newline (so the next append starts a line)."""
    if not path.is_file():
        return
    with open(path, "r+b") as f:
        size = f.seek(0, os.SEEK_END)
        end = size
        while end > 0:
            start = max(0, end - 65536)
            f.seek(start)
            chunk = f.read(end - start)
            if end == size and chunk.endswith(b"\n"):
                return
            cut = chunk.rfind(b"\n")
            if cut >= 0:
                f.truncate(start + cut + 1)
                return
            end = start
        f.truncate(0)


class JournalIndex:
    """Where each journaled file's record is: file name -> (journal file, byte offset).

    About a hundred bytes a file: the rows themselves stay on disk until
    :meth:`record` reads them. A line cut short by a kill, or not valid JSON, is skipped;
    when a file was journaled twice, the first record kept (journals in name order) wins."""

    def __init__(self, out: Path):
        self.paths = _journal_files(out)
        self._where: dict[str, tuple[int, int]] = {}
        for i, path in enumerate(self.paths):
            with open(path, "rb") as f:
                offset = 0
                for line in f:
                    if line.endswith(b"\n"):
                        try:
                            name = json.loads(line)["file"]
                        except (ValueError, KeyError, TypeError):
                            name = None
                        if isinstance(name, str):
                            self._where.setdefault(name, (i, offset))
                    offset += len(line)

    def __contains__(self, name: str) -> bool:
        return name in self._where

    def __len__(self) -> int:
        return len(self._where)

    def record(self, name: str) -> dict:
        i, offset = self._where[name]
        with open(self.paths[i], "rb") as f:
            f.seek(offset)
            return json.loads(f.readline())


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def model_fingerprint(predictor) -> dict:
    """What identifies the measuring model of a :class:`~hcmeasure.predictor.HeadPredictor`:
    its merged config (without the device) and the bytes of its weights, of its head
    refiner's config and members when it has one, and of its trust calibration."""
    from ..predictor import trust_calibration_path

    cfg = predictor.cfg.clone()
    cfg.defrost()
    cfg.MODEL.DEVICE = ""
    model = {
        "config_sha256": hashlib.sha256(cfg.dump().encode("utf-8")).hexdigest(),
        "weights_sha256": file_sha256(predictor.weights),
        "config_file": str(predictor.config_file),
        "weights_file": str(predictor.weights),
    }
    if getattr(predictor, "refiner", None) is not None:
        members = predictor.refiner_weights
        members = members if isinstance(members, (list, tuple)) else [members]
        model["refiner_config_sha256"] = file_sha256(predictor.refiner_config)
        model["refiner_weights_sha256"] = [file_sha256(w) for w in members]
    trust = trust_calibration_path(predictor.cfg, predictor.config_file)
    model["trust_calibration_sha256"] = None if trust is None else file_sha256(trust)
    return model


#: Fingerprint entries that only name things (not compared: a moved model is the same model).
_NAMES_ONLY = ("config_file", "weights_file")


def _compared(fingerprint: dict) -> dict:
    out = {k: v for k, v in fingerprint.items() if k != "run_id"}
    out["model"] = {k: v for k, v in fingerprint.get("model", {}).items() if k not in _NAMES_ONLY}
    return out


def _differences(old: dict, new: dict) -> list[str]:
    a, b = _compared(old), _compared(new)
    diffs = []
    for key in sorted(set(a) | set(b)):
        if isinstance(a.get(key), dict) and isinstance(b.get(key), dict):
            diffs += [f"{key}.{k}" for k in sorted(set(a[key]) | set(b[key])) if a[key].get(k) != b[key].get(k)]
        elif a.get(key) != b.get(key):
            diffs.append(key)
    return diffs


class OutLock:
    """An exclusive ``flock`` on ``OUT/journal/lock`` for the run writing into OUT (released
    when the run ends, also by a kill). Without ``fcntl`` (Windows) it does nothing."""

    def __init__(self, out: Path):
        self.path = _journal_dir(out) / "lock"
        self._f = None

    def acquire(self) -> None:
        try:
            import fcntl
        except ImportError:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = open(self.path, "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            raise CLIError(
                f"{self.path.parent.parent}: another 'hcmeasure predict' is writing into this folder now; "
                "wait for it to end, or choose another --out.") from None
        self._f = f

    def release(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


def prepare_out(out: Path, fingerprint: dict, *, resume: bool, overwrite: bool) -> tuple[str, str | None]:
    """Make OUT ready for this run (process 0 only): refuse a different fingerprint unless
    ``overwrite``, keep the journal for ``resume``, else start it afresh; write the new
    fingerprint with a new run id. Returns ``(run_id, note)``; ``note`` says when
    ``--resume`` found nothing to resume."""
    folder = _journal_dir(out)
    path = folder / FINGERPRINT
    old, note = None, None
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            old = {"unreadable": str(path)}
    if old is not None and _differences(old, fingerprint) and not overwrite:
        what = ", ".join(_differences(old, fingerprint))
        was = old.get("model", {})
        raise CLIError(
            f"{out}: holds the results of another run (it differs in: {what}; that run used --model "
            f"{was.get('weights_file', '?')} --config {was.get('config_file', '?')} on {old.get('input', '?')}). "
            "Results of two runs are never mixed: pass --overwrite to replace them, or choose another --out.")
    if resume and old is None:
        note = f"--resume: {out} holds no journal of an earlier run; every file is measured"
    if not (resume and old is not None):
        for p in _journal_files(out):
            p.unlink()
        if old is not None and overwrite:
            for name in FINAL_OUTPUTS:
                (Path(out) / name).unlink(missing_ok=True)
    remove_stale_temporaries(out)
    run_id = secrets.token_hex(8)
    atomic_write_bytes(path, (json.dumps({**fingerprint, "run_id": run_id}, indent=1) + "\n").encode("utf-8"))
    return run_id, note


def remove_stale_temporaries(out: Path) -> list[Path]:
    """Delete what an earlier run killed mid-write left behind: the temporary files of
    atomic writes (``.NAME.XXXXXXXX.tmp``) in OUT and its sub-folders. None of them is ever a
    final output; returns those removed."""
    removed = []
    for p in Path(out).rglob(".*.tmp"):
        if p.is_file():
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def check_run_id(out: Path, run_id: str, rank: int) -> str | None:
    """None when this process sees the fingerprint process 0 just wrote into OUT; else the
    message (processes on other machines need OUT on a folder every machine sees)."""
    import socket

    path = _journal_dir(out) / FINGERPRINT
    try:
        seen = json.loads(path.read_text(encoding="utf-8")).get("run_id")
    except (OSError, ValueError):
        seen = None
    if seen == run_id:
        return None
    return (f"process {rank} on {socket.gethostname()} does not see {path} as process 0 wrote it: "
            "with several machines, --out (and INPUT) must be folders that every machine sees "
            "at the same path (a shared file system).")


@dataclass
class FinalTables:
    """What :func:`write_final_tables` wrote: rows by status, warnings in input order,
    the files declaring burned-in annotations, and the rows of this run."""

    n_rows: int = 0
    n_rows_new: int = 0
    n_files_resumed: int = 0
    counts: Counter = field(default_factory=Counter)
    warnings: list[str] = field(default_factory=list)
    row_messages: list[str] = field(default_factory=list)
    burned_in: list[str] = field(default_factory=list)
    ga_outside: int = 0


def journal_rows(out: Path, names: Sequence[str], *, read_only: bool = False) -> Iterator[tuple[str, dict]]:
    """``(file name, row)`` of every row in the journal, in the order of ``names``
    (``read_only``: only the rows of files that could be read, i.e. came from the model)."""
    index = JournalIndex(out)
    for name in names:
        record = index.record(name)
        if read_only and not record.get("read", True):
            continue
        for row in record["rows"]:
            yield name, row


def write_final_tables(out: Path, names: Sequence[str], columns: Sequence[str],
                       resumed: frozenset[str] | set[str] = frozenset(),
                       row_messages: Callable[[list[dict]], list[str]] | None = None) -> FinalTables:
    """Write ``OUT/measurements.csv`` (``columns``) and ``OUT/submission.csv`` from the
    journal, one file's rows after the other in the order of ``names``, each streamed and
    renamed into place. ``resumed`` names the files measured by an earlier run;
    ``row_messages(rows)`` gives warnings about a file's rows (kept in order)."""
    index = JournalIndex(out)
    missing = [n for n in names if n not in index]
    if missing:
        raise CLIError(
            f"{out}: the journal has no results for {len(missing)} file(s), e.g. {missing[0]}; "
            "a process stopped before measuring them. Run again with --resume.")
    summary = FinalTables()

    def rows(collect: bool) -> Iterator[dict]:
        for name in names:
            record = index.record(name)
            if collect:
                summary.warnings += record.get("warnings", [])
                if record.get("burned_in"):
                    summary.burned_in.append(name)
                summary.n_rows += len(record["rows"])
                if name in resumed:
                    summary.n_files_resumed += 1
                else:
                    summary.n_rows_new += len(record["rows"])
                if row_messages is not None:
                    summary.row_messages += row_messages(record["rows"])
                for row in record["rows"]:
                    summary.counts[row.get("status", "")] += 1
                    summary.ga_outside += row.get("ga_status", "").startswith("hc_")
            yield from record["rows"]

    write_csv_atomic(Path(out) / "measurements.csv", columns, rows(True))
    write_csv_atomic(Path(out) / "submission.csv", SUBMISSION_COLUMNS, (submission_row(r) for r in rows(False)))
    return summary
