"""Peak memory of whole-image versus tiled inference of one 1200x1600 image.

Each measurement runs in a fresh subprocess (so one cannot inherit the other's freed
pages); peak resident memory (``ru_maxrss``) is read after building the model and the
input (baseline) and after one inference (peak); the difference is what inference
itself needed. Random weights: memory does not depend on their values.

    OMP_NUM_THREADS=1 python benchmarks/tiled_memory.py                 # defaults below
    python benchmarks/tiled_memory.py --config configs/Cells/unet_tiled.yaml \\
        --height 1200 --width 1600 --tile 200 --overlap 100 --tile-batch 1 --out results/tiled_memory.json
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def measure(args) -> dict:
    import torch
    from hcmeasure.modeling.loading import load_model

    torch.set_num_threads(max(1, args.threads))
    torch.manual_seed(0)
    _, model = load_model(Path(args.config), None, "cpu",
                          ["HCMEASURE.TILE.TEST_SIZE", str(args.tile if args.mode == "tiled" else 0),
                           "HCMEASURE.TILE.TEST_OVERLAP", str(args.overlap),
                           "HCMEASURE.TILE.TEST_BATCH", str(args.tile_batch)])
    image = torch.randint(0, 256, (3, args.height, args.width), dtype=torch.uint8).float()
    base = _rss_mib()
    start = time.perf_counter()
    with torch.inference_mode():
        out = model([{"image": image}])[0]["sem_seg"]
    seconds = time.perf_counter() - start
    peak = _rss_mib()
    assert tuple(out.shape[-2:]) == (args.height, args.width)
    return {"mode": args.mode, "baseline_mib": round(base, 1), "peak_mib": round(peak, 1),
            "inference_mib": round(peak - base, 1), "seconds": round(seconds, 2)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=str(REPO / "configs/Cells/unet_tiled.yaml"))
    p.add_argument("--height", type=int, default=1200)
    p.add_argument("--width", type=int, default=1600)
    p.add_argument("--tile", type=int, default=200)
    p.add_argument("--overlap", type=int, default=100)
    p.add_argument("--tile-batch", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None, help="also write the results as JSON here")
    p.add_argument("--mode", choices=("whole", "tiled"), default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.mode:  # child process: one measurement, JSON on stdout
        print(json.dumps(measure(args)))
        return 0
    results = []
    for mode in ("whole", "tiled"):
        cmd = [sys.executable, __file__, "--mode", mode] + [a for a in (argv or sys.argv[1:]) if a]
        line = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        results.append(json.loads(line))
    report = {"image": [args.height, args.width], "tile": args.tile, "overlap": args.overlap,
              "tile_batch": args.tile_batch, "config": args.config, "results": results}
    for r in results:
        print(f"{r['mode']:>5}: inference {r['inference_mib']:8.1f} MiB above a baseline of "
              f"{r['baseline_mib']:.1f} MiB (peak RSS {r['peak_mib']:.1f} MiB), {r['seconds']:.1f} s")
    if args.out:
        from hcmeasure.io.tables import write_json_atomic

        write_json_atomic(args.out, report, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
