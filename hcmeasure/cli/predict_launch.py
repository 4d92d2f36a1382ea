"""``hcmeasure predict`` over several processes and machines, through Detectron2's ``launch``.

``--num-processes N`` starts N processes on this machine (one per GPU on a GPU
machine); ``--num-machines``, ``--machine-rank`` and ``--dist-url`` are those of
``tools/train_net.py``. torch.distributed connects them (gloo on CPUs, NCCL on GPUs);
each process measures every N-th of the files still to measure, and process 0 writes
the final tables from the journal (:mod:`hcmeasure.cli.predict_journal`). With one
process (the default) nothing is started: the command runs in this process.
"""
from __future__ import annotations

import os
import sys
from datetime import timedelta

from .common import CLIError

__all__ = ["add_scale_arguments", "check_scale_arguments", "launch_processes", "process_device",
           "set_process_threads", "share_of", "PROCESS_GROUP_TIMEOUT"]

#: How long a process waits for the others (at the start, and at the end for the slowest
#: share): Detectron2's 30 minutes is short for an archive split unevenly by multi-frame files.
PROCESS_GROUP_TIMEOUT = timedelta(hours=24)


def add_scale_arguments(p) -> None:
    g = p.add_argument_group("many files, processes and machines")
    g.add_argument("--resume", action="store_true",
                   help="measure only the files not yet in OUT's journal (a run that stopped), then write "
                        "the final tables from all of them")
    g.add_argument("--overwrite", action="store_true",
                   help="replace the results in OUT even when another model, config, input or option made them")
    g.add_argument("--num-processes", type=int, default=1, metavar="N",
                   help="processes on this machine, each measuring a share of the files (default 1; "
                        "on a GPU machine, one per GPU)")
    g.add_argument("--num-machines", type=int, default=1, metavar="M", help="machines taking part (default 1)")
    g.add_argument("--machine-rank", type=int, default=0, metavar="R",
                   help="this machine's rank, 0 to M-1; machine 0 writes the tables (default 0)")
    g.add_argument("--dist-url", default=None, metavar="URL",
                   help="where the processes meet: tcp://HOST:PORT of machine 0, the same on every machine "
                        "(default with one machine: a free local port)")


def check_scale_arguments(args) -> None:
    """Refuse impossible combinations before any process is started."""
    if args.resume and args.overwrite:
        raise CLIError("--resume and --overwrite: pass one of them (--resume keeps the results in OUT, "
                       "--overwrite replaces them).")
    if args.num_processes < 1:
        raise CLIError(f"--num-processes {args.num_processes}: must be at least 1.")
    if args.num_machines < 1:
        raise CLIError(f"--num-machines {args.num_machines}: must be at least 1.")
    if not 0 <= args.machine_rank < args.num_machines:
        raise CLIError(f"--machine-rank {args.machine_rank}: must be 0 to {args.num_machines - 1} "
                       f"with --num-machines {args.num_machines}.")
    if args.num_machines > 1 and (not args.dist_url or args.dist_url == "auto"):
        raise CLIError("--num-machines > 1 needs --dist-url tcp://HOST:PORT, HOST being machine 0 "
                       "(the same URL on every machine).")
    import torch

    if args.device != "cpu" and torch.cuda.is_available() and args.num_processes > torch.cuda.device_count():
        raise CLIError(f"--num-processes {args.num_processes}: this machine has {torch.cuda.device_count()} "
                       "GPU(s), one process each; pass at most that many, or --device cpu.")


def launch_processes(main_func, args) -> int:
    """``main_func(args)`` in every process of the run (in this process when there is one);
    the exit status of the run."""
    from detectron2.engine import launch

    world_size = args.num_processes * args.num_machines
    if world_size == 1:
        return int(main_func(args) or 0)
    import torch.multiprocessing as mp

    from ..known_warnings import quiet_child_processes

    try:
        with quiet_child_processes(getattr(args, "verbose", False)):
            launch(_process_main, args.num_processes, num_machines=args.num_machines,
                   machine_rank=args.machine_rank, dist_url=args.dist_url or "auto",
                   args=(main_func, args), timeout=PROCESS_GROUP_TIMEOUT)
    except mp.ProcessExitedException as exc:
        # The process printed its message; a run stopped by a signal gives 1.
        return exc.exit_code if exc.exit_code and exc.exit_code > 0 else 1
    except mp.ProcessRaisedException as exc:
        raise CLIError(f"a measuring process failed:\n{exc}") from None
    return 0


def _process_main(main_func, args) -> None:
    """One started process: a stopping problem is printed once (by process 0, every
    process having the same message) and ends the process with status 2. Warnings as in
    the command that started it (``--verbose``; the import-time ones it showed already)."""
    from detectron2.utils import comm

    from ..known_warnings import quiet_cli

    try:
        with quiet_cli(getattr(args, "verbose", False), show_deferred=False):
            code = int(main_func(args) or 0)
    except CLIError as exc:
        if comm.is_main_process():
            print(f"hcmeasure predict: error: {exc}", file=sys.stderr)
        sys.exit(2)
    if code:
        sys.exit(code)


def process_device(device: str | None) -> str | None:
    """``--device`` for this process: on a GPU machine with several processes, the
    process's own GPU (``launch`` gives process i GPU i)."""
    import torch
    from detectron2.utils import comm

    if comm.get_local_size() > 1 and device != "cpu" and torch.cuda.is_available():
        return f"cuda:{comm.get_local_rank()}"
    return device


def set_process_threads() -> None:
    """With several processes on one machine, each gets its share of the cores for torch
    (unless ``HCMEASURE_NUM_THREADS`` says otherwise): N processes of all the cores each
    would fight over them."""
    import torch
    from detectron2.utils import comm

    local = comm.get_local_size()
    if local > 1 and not os.environ.get("HCMEASURE_NUM_THREADS"):
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local))


def share_of(items: list, rank: int, world_size: int) -> list:
    """The items process ``rank`` measures: every ``world_size``-th one from ``rank`` on
    (shares differ by at most one file, and each holds files from the whole folder)."""
    return items[rank::world_size]
