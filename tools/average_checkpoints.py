#!/usr/bin/env python
"""Average the weights of several checkpoints of one model (uniform weight averaging).

    python tools/average_checkpoints.py output/run/model_0000299.pth output/run/model_0000399.pth \
        output/run/model_final.pth --out output/run/model_average.pth

Every checkpoint must hold the same parameter names and shapes (checkpoints of one
training run, or of runs of one config). Floating-point tensors (weights, biases,
BatchNorm running statistics) are averaged in float32 and stored in the dtype of the
last checkpoint; other tensors (``num_batches_tracked``) are taken from the last
checkpoint. Writes model weights only (no optimizer or scheduler state), atomically,
in the format ``tools/train_net.py`` (``MODEL.WEIGHTS``) and ``tools/publish_model.py``
read.
"""
import argparse
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hcmeasure.modeling.checkpoint import save_model_weights  # noqa: E402


def load_state(path: Path) -> dict:
    """The ``model`` state dict of a Detectron2 checkpoint (or a bare state dict)."""
    if not path.is_file():
        raise SystemExit(f"{path}: not found")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    state = ckpt.get("model", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SystemExit(f"{path}: not a checkpoint of model weights (expected a dict of tensors under 'model')")
    return state


def average_states(states: list[dict], names: list[str]) -> dict:
    """Uniform average of ``states`` (same keys and shapes); ``names`` label them in errors."""
    first, last = states[0], states[-1]
    for state, name in zip(states[1:], names[1:]):
        if state.keys() != first.keys():
            diff = sorted(set(state) ^ set(first))
            raise SystemExit(f"{name}: its parameters differ from {names[0]}'s ({', '.join(diff[:5])}"
                             f"{', ...' if len(diff) > 5 else ''}); average checkpoints of one model only")
        for key, value in state.items():
            if value.shape != first[key].shape:
                raise SystemExit(f"{name}: {key} has shape {tuple(value.shape)}, {names[0]} has "
                                 f"{tuple(first[key].shape)}; average checkpoints of one model only")
    averaged = {}
    for key, value in last.items():
        if value.is_floating_point():
            total = sum(state[key].to(torch.float32) for state in states)
            averaged[key] = (total / len(states)).to(value.dtype)
        else:
            averaged[key] = value.clone()
    return averaged


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoints", type=Path, nargs="+")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    if len(args.checkpoints) < 2:
        p.error("give at least two checkpoints to average")
    names = [str(c) for c in args.checkpoints]
    averaged = average_states([load_state(c) for c in args.checkpoints], names)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_model_weights(averaged, args.out, averaged_from=names)
    print(f"wrote {args.out} (average of {len(names)} checkpoints)")


if __name__ == "__main__":
    main()
