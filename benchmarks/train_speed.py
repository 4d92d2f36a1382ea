#!/usr/bin/env python
"""Training throughput of one config on this machine, and what changes it.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/train_speed.py \
        --config-file configs/HC18/cv5/head_refiner_unet_effnet_lite0.yaml \
        --variants baseline channels_last batch4 batch16 --json benchmarks/results/train_speed_refiner.json

Each variant times ``--iters`` training steps (forward, backward, optimizer step; after
``--warmup`` untimed ones) on batches taken from the config's own training loader
beforehand, so the step time excludes data loading; the loader's time per batch is
measured on its own (``loader``), with the config's worker count. Variants:

* ``baseline``: the model as ``tools/train_net.py`` builds it, channels-last off;
* ``channels_last``: HCMEASURE.SOLVER.CHANNELS_LAST on (weights, and so the convolutions,
  in channels-last layout);
* ``batch<N>``: SOLVER.IMS_PER_BATCH = N (compare seconds per *image*);
* ``compile``: ``torch.compile`` of the model (its compile time is reported apart);
* ``bf16``: forward pass under CPU bfloat16 autocast (weights, gradients and the
  optimizer stay float32; tools/train_net.py has no such option);
* ``a+b``: both, e.g. ``channels_last+batch4``.

Machines differ by more than 2x, so compare variants of one run only; the figures are
ratios to ``baseline``. Nothing else should run meanwhile.
"""
from __future__ import annotations

import argparse
import itertools
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))


def _setup(config_file: Path, opts: list[str]):
    from detectron2.config import get_cfg

    from hcmeasure.config import add_hcmeasure_config

    cfg = get_cfg()
    add_hcmeasure_config(cfg)
    cfg.merge_from_file(str(config_file))
    cfg.merge_from_list(["MODEL.DEVICE", "cpu", *opts])
    return cfg


def _batches(cfg, n: int):
    """``n`` batches from the config's training loader, and the loader's seconds per batch."""
    from train_net import Trainer

    loader = Trainer.build_train_loader(cfg)
    it = iter(loader)
    next(it)  # workers started
    start = time.perf_counter()
    batches = list(itertools.islice(it, n))
    return batches, (time.perf_counter() - start) / n


def _time_steps(cfg, batches, warmup: int, iters: int, channels_last=False, compile_model=False,
                bf16=False) -> dict:
    import torch

    from train_net import Trainer

    torch.manual_seed(0)
    cfg = cfg.clone()
    cfg.defrost()
    cfg.HCMEASURE.SOLVER.CHANNELS_LAST = bool(channels_last)
    model = Trainer.build_model(cfg)
    model.train()
    optimizer = Trainer.build_optimizer(cfg, model)
    step_model = model
    if compile_model:
        step_model = torch.compile(model)

    def step(batch):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            losses = step_model(batch)
        loss = sum(losses.values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return float(loss)

    from detectron2.utils.events import EventStorage

    with EventStorage(0):
        return _timed_loop(step, batches, warmup, iters, compile_model, cfg.SOLVER.IMS_PER_BATCH)


def _timed_loop(step, batches, warmup: int, iters: int, compile_model: bool, ims_per_batch: int) -> dict:
    cycle = itertools.cycle(batches)
    compile_s = 0.0
    for i in range(warmup):
        t = time.perf_counter()
        step(next(cycle))
        if compile_model and i == 0:
            compile_s = time.perf_counter() - t
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        step(next(cycle))
        times.append(time.perf_counter() - t)
    times.sort()
    per_batch = times[len(times) // 2]
    out = {"step_s_median": per_batch, "step_s_min": times[0], "per_image_s": per_batch / ims_per_batch,
           "ims_per_batch": ims_per_batch}
    if compile_model:
        out["compile_s"] = compile_s
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config-file", type=Path, required=True)
    p.add_argument("--variants", nargs="+", default=["baseline", "channels_last"],
                   help="baseline, channels_last, batch<N>, compile, bf16 (default: baseline channels_last)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per variant (default 2)")
    p.add_argument("--iters", type=int, default=6, help="timed steps per variant (default 6)")
    p.add_argument("--json", type=Path, default=None, help="write the figures here too")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    args = p.parse_args(argv)

    import torch

    import hcmeasure  # noqa: F401  (registers datasets and models)
    import warnings

    warnings.filterwarnings("ignore")
    threads = int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads()))
    torch.set_num_threads(threads)
    base = _setup(args.config_file, args.opts)
    n_batches = args.warmup + args.iters
    results = {"config": str(args.config_file), "torch": torch.__version__, "threads": threads,
               "machine": platform.processor() or platform.machine(), "variants": {}}
    batches, results["loader_s_per_batch"] = _batches(base, n_batches)
    results["loader_workers"] = base.DATALOADER.NUM_WORKERS
    print(f"loader: {results['loader_s_per_batch']:.3f} s/batch of {base.SOLVER.IMS_PER_BATCH} "
          f"({base.DATALOADER.NUM_WORKERS} workers)", flush=True)
    for name in args.variants:
        cfg, these, kwargs = base, batches, {}
        for part in name.split("+"):
            if part.startswith("batch"):
                cfg = base.clone()
                cfg.defrost()
                cfg.SOLVER.IMS_PER_BATCH = n = int(part[5:])
                if n <= base.SOLVER.IMS_PER_BATCH:  # the same images, in smaller batches
                    images = [d for b in batches for d in b]
                    these = [images[i:i + n] for i in range(0, len(images) - n + 1, n)]
                else:
                    these, _ = _batches(cfg, n_batches)
            elif part == "channels_last":
                kwargs["channels_last"] = True
            elif part == "compile":
                kwargs["compile_model"] = True
            elif part == "bf16":
                kwargs["bf16"] = True
            elif part != "baseline":
                raise SystemExit(f"unknown variant {part!r}")
        r = _time_steps(cfg, these, args.warmup, args.iters, **kwargs)
        results["variants"][name] = r
        print(f"{name:>14}: {r['step_s_median']:.3f} s/step, {r['per_image_s']:.3f} s/image"
              + (f" (compile {r['compile_s']:.0f} s)" if "compile_s" in r else ""), flush=True)
    if "baseline" in results["variants"]:
        ref = results["variants"]["baseline"]["per_image_s"]
        for name, r in results["variants"].items():
            r["per_image_ratio_to_baseline"] = r["per_image_s"] / ref
    share = results["loader_s_per_batch"] / (results["loader_s_per_batch"]
                                             + results["variants"].get("baseline", {}).get("step_s_median", float("nan")))
    results["loader_share_if_serial"] = share
    if args.json:
        from hcmeasure.io.tables import write_json_atomic

        write_json_atomic(args.json, results, indent=2)
        print(f"-> {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
