#!/usr/bin/env python
"""Memory and speed of ``hcmeasure predict`` on a folder of many files: does memory stay
flat as the files go by?

    .venv/bin/python benchmarks/predict_scale.py --n 3000                # 3000 x s/image (~13 min at 0.25)
    .venv/bin/python benchmarks/predict_scale.py --n 20 --out /tmp/s.json   # a quick check of the script
    .venv/bin/python benchmarks/predict_scale.py --n 3000 --num-processes 2 --tag 2proc

The folder holds ``--n`` symbolic links (``--copy``: copies) named ``<i>_<scan>`` to the
scans of ``--source`` (default: the HC18 test set), taken in turn, and a pixel-size CSV
for them. ``hcmeasure predict`` (the shipped default model unless ``--model``/``--config``)
runs in a subprocess over it; every ``--interval`` seconds the script reads how many
files the journal holds and the resident memory of the predict processes (the parent
and the processes it started, summed, from /proc). It reports the resident memory when
10 %, 50 % and all of the files were in the journal (the growth after the first 10 %,
once the allocators have warmed up, is what the number of files costs), the peak RSS
of the largest process (``ru_maxrss``), the wall time and predict's own s/image. Writes ``benchmarks/results/predict_scale_<tag>.json``.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HCMEASURE_SHARED", REPO.parent / "shared"))


def build_folder(folder: Path, source: Path, sizes_csv: Path | None, n: int, copy: bool) -> Path:
    """``folder/scans`` with ``n`` links (or copies) to the scans of ``source``, and
    ``folder/sizes.csv`` giving each its source's pixel size; returns the CSV path."""
    scans = sorted(p for p in source.iterdir() if p.suffix.lower() == ".png" and "Annotation" not in p.name)
    if not scans:
        raise SystemExit(f"{source}: no PNG scans")
    sizes = {}
    if sizes_csv is not None and sizes_csv.is_file():
        with open(sizes_csv, newline="") as f:
            sizes = {row[0]: row[1] for row in list(csv.reader(f))[1:] if len(row) > 1}
    target = folder / "scans"
    target.mkdir(parents=True)
    width = len(str(n - 1))
    rows = [["filename", "pixel size(mm)"]]
    for i in range(n):
        src = scans[i % len(scans)]
        name = f"{i:0{width}d}_{src.name}"
        if copy:
            shutil.copyfile(src, target / name)
        else:
            (target / name).symlink_to(src.resolve())
        rows.append([name, sizes.get(src.name, "0.1")])
    with open(folder / "sizes.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return folder / "sizes.csv"


def _tree_pids(pid: int) -> list[int]:
    """``pid`` and its descendants (from /proc/<pid>/task/*/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass
    return out


def _rss_mib(pids) -> float:
    total = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024.0


def _journaled(out: Path) -> int:
    total = 0
    for p in (out / "journal").glob("rows-rank*.jsonl"):
        try:
            with open(p, "rb") as f:
                total += sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
        except OSError:
            pass
    return total


def run_predict(cmd: list[str], out: Path, n: int, interval: float, env: dict) -> dict:
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    samples = []  # (seconds, files journaled, RSS MiB of the process tree)
    while proc.poll() is None:
        samples.append((round(time.perf_counter() - start, 2), _journaled(out), round(_rss_mib(_tree_pids(proc.pid)), 1)))
        time.sleep(interval)
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - start
    # ru_maxrss of the largest process among predict and the processes it started (KiB on Linux).
    import resource

    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if proc.returncode != 0:
        raise SystemExit(f"predict failed ({proc.returncode}):\n{stderr[-4000:]}")
    m = re.search(r"measured (\d+) image\(s\) in ([\d.]+) s \(([\d.]+) s/image\)", stdout)
    done = [s for s in samples if s[1] > 0]

    def rss_when(fraction: float):
        hit = [s for s in done if s[1] >= fraction * n]
        return hit[0][2] if hit else None

    rss_10, rss_end = rss_when(0.10), rss_when(1.0)
    return {
        "wall_s": round(wall, 2),
        "measured_images": int(m.group(1)) if m else None,
        "measuring_s": float(m.group(2)) if m else None,
        "s_per_image": float(m.group(3)) if m else None,
        "peak_rss_mib_largest_process": round(peak_kib / 1024.0, 1),
        "rss_mib_at_10pct": rss_10,
        "rss_mib_at_50pct": rss_when(0.5),
        "rss_mib_at_end": rss_end,
        "rss_growth_mib_10pct_to_end": None if rss_10 is None or rss_end is None else round(rss_end - rss_10, 1),
        "rss_mib_per_1000_files_after_10pct": None if rss_10 is None or rss_end is None
        else round((rss_end - rss_10) / (0.9 * n) * 1000, 2),
        "samples_s_files_rssmib": samples,
        "summary_line": m.group(0) if m else stdout.strip().splitlines()[-1:],
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=3000, help="files in the folder (default 3000)")
    p.add_argument("--source", type=Path, default=SHARED / "data" / "hc18" / "test_set")
    p.add_argument("--sizes", type=Path, default=SHARED / "data" / "hc18" / "test_set_pixel_size.csv",
                   help="pixel-size CSV of the source scans")
    p.add_argument("--copy", action="store_true", help="copy the scans instead of linking them")
    p.add_argument("--num-processes", type=int, default=1)
    p.add_argument("--overlays", action="store_true", help="also write overlays (default: --no-overlays)")
    p.add_argument("--model", type=Path)
    p.add_argument("--config", type=Path)
    p.add_argument("--interval", type=float, default=1.0, help="seconds between memory samples")
    p.add_argument("--workdir", type=Path, default=None, help="where the folder is built (default: a temporary one)")
    p.add_argument("--keep", action="store_true", help="keep the folder and the output")
    p.add_argument("--tag", default=None, help="result name: predict_scale_<tag>.json (default: the file count)")
    p.add_argument("--out", type=Path, default=None, help="result JSON (default: benchmarks/results/...)")
    args = p.parse_args(argv)
    if args.n < 1:
        p.error("--n must be at least 1")

    work = Path(tempfile.mkdtemp(prefix="hcmeasure_scale_", dir=args.workdir))
    try:
        sizes = build_folder(work, args.source, args.sizes, args.n, args.copy)
        out = work / "out"
        cmd = [sys.executable, "-m", "hcmeasure.cli.main", "predict", str(work / "scans"), "--out", str(out),
               "--pixel-size-csv", str(sizes), "--num-processes", str(args.num_processes)]
        if not args.overlays:
            cmd.append("--no-overlays")
        if args.model:
            cmd += ["--model", str(args.model)] + (["--config", str(args.config)] if args.config else [])
        result = run_predict(cmd, out, args.n, args.interval, dict(os.environ))
        import torch

        rows = sum(1 for _ in open(out / "measurements.csv")) - 1
        report = {
            "n_files": args.n,
            "rows_written": rows,
            "num_processes": args.num_processes,
            "overlays": args.overlays,
            "links": not args.copy,
            "source": str(args.source),
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                        "torch": torch.__version__, "torch_threads_default": torch.get_num_threads(),
                        "HCMEASURE_NUM_THREADS": os.environ.get("HCMEASURE_NUM_THREADS"),
                        "load_average_at_end": os.getloadavg()},
            **result,
        }
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    target = args.out or REPO / "benchmarks" / "results" / f"predict_scale_{args.tag or args.n}.json"
    from hcmeasure.io.tables import write_json_atomic

    write_json_atomic(target, report)
    print(json.dumps({k: v for k, v in report.items() if k != "samples_s_files_rssmib"}, indent=1))
    print(f"-> {target}" + (f" (folder kept in {work})" if args.keep else ""))


if __name__ == "__main__":
    main()
