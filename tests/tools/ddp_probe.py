"""tools/train_net.py's Trainer under Detectron2's ``launch``, recording per rank what
distributed data-parallel training must make equal or different (for
tests/tools/test_train_net_ddp.py; not collected by pytest):

    python tests/tools/ddp_probe.py PROBE_DIR --num-gpus 2 --dist-url URL --config-file CFG [OPTS]

Each rank writes ``PROBE_DIR/rank<R>.pth``: ``params_initial`` (its parameters when
training starts), ``params_final`` (after the last step), ``seen`` (the file name of
every training image it was given, in order) and ``world_size``. Training, the
checkpoint written by rank 0 and the logs are exactly those of ``tools/train_net.py``.
"""
import importlib.util
import sys
from pathlib import Path

import torch
from detectron2.engine import HookBase, default_argument_parser, launch
from detectron2.utils import comm

TOOLS = Path(__file__).resolve().parents[2] / "tools"


def _load_train_net():
    spec = importlib.util.spec_from_file_location("hcmeasure_tool_train_net", TOOLS / "train_net.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


train_net = _load_train_net()


class RecordingLoader:
    """The training loader, remembering the file name of each image it hands out."""

    def __init__(self, loader):
        self.loader = loader
        self.seen: list[str] = []

    def __iter__(self):
        for batch in self.loader:
            self.seen.extend(Path(d["file_name"]).name for d in batch)
            yield batch


def _params(model) -> dict:
    model = getattr(model, "module", model)  # DistributedDataParallel keeps the model as .module
    return {n: p.detach().clone() for n, p in model.named_parameters()}


class ProbeHook(HookBase):
    def __init__(self, probe_dir: Path):
        self.probe_dir = probe_dir

    def before_train(self):
        self.initial = _params(self.trainer.model)

    def after_train(self):
        record = {
            "params_initial": self.initial,
            "params_final": _params(self.trainer.model),
            "seen": self.trainer.data_loader.seen,
            "world_size": comm.get_world_size(),
        }
        torch.save(record, self.probe_dir / f"rank{comm.get_rank()}.pth")


class ProbeTrainer(train_net.Trainer):
    probe_dir: Path

    @classmethod
    def build_train_loader(cls, cfg):
        return RecordingLoader(super().build_train_loader(cfg))

    def build_hooks(self):
        return super().build_hooks() + [ProbeHook(self.probe_dir)]


def main(args, probe_dir: Path):
    cfg = train_net.setup(args)
    ProbeTrainer.probe_dir = probe_dir
    trainer = ProbeTrainer(cfg)
    trainer.resume_or_load(resume=False)
    return trainer.train()


if __name__ == "__main__":
    probe = Path(sys.argv[1])
    probe.mkdir(parents=True, exist_ok=True)
    args = default_argument_parser().parse_args(sys.argv[2:])
    launch(main, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
           dist_url=args.dist_url, args=(args, probe))
