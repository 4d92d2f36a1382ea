#!/usr/bin/env python
"""Train and evaluate hcmeasure models with Detectron2's DefaultTrainer.

    python tools/train_net.py --config-file configs/HC18/mask_rcnn_effnet_lite0_FPN.yaml
    python tools/train_net.py --config-file ... --eval-only MODEL.WEIGHTS output/.../model_final.pth
    python tools/train_net.py --config-file ... --num-gpus 8          # multi-GPU via launch()
    python tools/train_net.py --config-file ... --num-gpus 2          # on a CPU: 2 processes (gloo)
    python tools/train_net.py --config-file ... --resume              # continue from last_checkpoint

Evaluators come from each dataset's ``evaluator_type`` in the MetadataCatalog
(hcmeasure.evaluation.registry): "hc18" -> HC18Evaluator (HC MAD/MSD in mm, Dice,
Hausdorff) plus COCOEvaluator; "sem_seg" -> SemSegEvaluator (mIoU).

Several processes (``--num-gpus N``, ``--num-machines``, ``--machine-rank``,
``--dist-url``) go through Detectron2's ``launch``: NCCL and one process per GPU on
GPUs, gloo and N processes on CPUs (see ``Trainer.__init__``).
"""
import logging
import os
import weakref

import torch

import detectron2.utils.comm as comm
from detectron2.config import get_cfg
from detectron2.data import (
    DatasetMapper,
    MetadataCatalog,
    build_detection_test_loader,
    build_detection_train_loader,
)
from detectron2.engine import (
    AMPTrainer,
    DefaultTrainer,
    SimpleTrainer,
    TrainerBase,
    default_argument_parser,
    default_setup,
    launch,
)
from detectron2.evaluation import verify_results
from detectron2.utils.logger import setup_logger

import hcmeasure  # noqa: F401  (registers datasets, backbones, meta-architectures)
from hcmeasure.config import add_hcmeasure_config
from hcmeasure.data.head_crops import HeadCropDatasetMapper
from hcmeasure.semseg.data import SemanticDatasetMapper
from hcmeasure.data.transforms import build_hc18_train_augmentations
from hcmeasure.engine import create_ddp_model
from hcmeasure.evaluation.registry import build_evaluators
from hcmeasure.modeling.checkpoint import HCMeasureCheckpointer
from hcmeasure.modeling.loading import load_model
from hcmeasure.solver import build_optimizer


class Trainer(DefaultTrainer):
    def __init__(self, cfg):
        """``DefaultTrainer.__init__``, with two changes: the model is wrapped by
        :func:`hcmeasure.engine.create_ddp_model`, which gives DistributedDataParallel
        device ids only for a CUDA model (Detectron2's gives them to a CPU model too,
        and torch refuses them, so ``--num-gpus 2`` on CPUs failed); and the
        checkpointer is hcmeasure's (torchvision ResNet weights are converted on load; a
        missing local MODEL.WEIGHTS is a clear error)."""
        TrainerBase.__init__(self)
        if not logging.getLogger("detectron2").isEnabledFor(logging.INFO):
            setup_logger()
        cfg = DefaultTrainer.auto_scale_workers(cfg, comm.get_world_size())
        model = self.build_model(cfg)
        optimizer = self.build_optimizer(cfg, model)
        data_loader = self.build_train_loader(cfg)
        model = create_ddp_model(model, broadcast_buffers=False)
        self._trainer = (AMPTrainer if cfg.SOLVER.AMP.ENABLED else SimpleTrainer)(model, data_loader, optimizer)
        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        self.checkpointer = HCMeasureCheckpointer(model, cfg.OUTPUT_DIR, trainer=weakref.proxy(self))
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self.cfg = cfg
        self.register_hooks(self.build_hooks())

    @classmethod
    def build_model(cls, cfg):
        """Detectron2's model, in channels-last layout when HCMEASURE.SOLVER.CHANNELS_LAST is on."""
        model = super().build_model(cfg)
        if cfg.HCMEASURE.SOLVER.CHANNELS_LAST:
            model.to(memory_format=torch.channels_last)
        return model

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        """Evaluators by the dataset's ``evaluator_type`` (hcmeasure.evaluation.registry):
        "hc18" -> HC18Evaluator + COCOEvaluator; "sem_seg" -> SemSegEvaluator; ..."""
        output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
        return build_evaluators(cfg, dataset_name, output_folder)

    @classmethod
    def build_optimizer(cls, cfg, model):
        """SGD/Adam/AdamW with per-module LR factors (HCMEASURE.SOLVER, hcmeasure.solver)."""
        return build_optimizer(cfg, model)

    @classmethod
    def build_lr_scheduler(cls, cfg, optimizer):
        """Detectron2's schedulers plus "WarmupPolyLR" (poly, SOLVER.POLY_LR_POWER) from its
        DeepLab project, which Detectron2's own builder does not know."""
        from detectron2.projects.deeplab import build_lr_scheduler

        return build_lr_scheduler(cfg, optimizer)

    @classmethod
    def build_train_loader(cls, cfg):
        if cfg.HCMEASURE.HEAD_CROP.ENABLED:
            return build_detection_train_loader(cfg, mapper=HeadCropDatasetMapper(cfg, is_train=True))
        if is_semantic(cfg):
            return build_detection_train_loader(cfg, mapper=SemanticDatasetMapper(cfg, is_train=True))
        mapper = DatasetMapper(cfg, is_train=True, augmentations=build_hc18_train_augmentations(cfg))
        return build_detection_train_loader(cfg, mapper=mapper)

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        if cfg.HCMEASURE.HEAD_CROP.ENABLED:
            return build_detection_test_loader(cfg, dataset_name, mapper=HeadCropDatasetMapper(cfg, is_train=False))
        if is_semantic(cfg):
            return build_detection_test_loader(cfg, dataset_name, mapper=SemanticDatasetMapper(cfg, is_train=False))
        return super().build_test_loader(cfg, dataset_name)


def is_semantic(cfg) -> bool:
    """True when the training datasets are semantic-segmentation ones (by their metadata:
    ``evaluator_type`` "sem_seg", or ``is_semantic`` set, as on the polyp datasets)."""
    names = cfg.DATASETS.TRAIN or cfg.DATASETS.TEST
    if not names:
        return False
    meta = MetadataCatalog.get(names[0])
    return meta.get("evaluator_type", None) == "sem_seg" or bool(meta.get("is_semantic", False))


def setup(args):
    cfg = get_cfg()
    add_hcmeasure_config(cfg)
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    if not torch.cuda.is_available():
        cfg.MODEL.DEVICE = "cpu"
    cfg.freeze()
    default_setup(cfg, args)
    # hcmeasure's own log messages go to the same console and log file as Detectron2's.
    setup_logger(output=cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="hcmeasure")
    return cfg


def main(args):
    cfg = setup(args)
    if args.eval_only:
        # Detectron2's checkpoint loading (model-zoo and torchvision files, --resume from
        # OUTPUT_DIR's last checkpoint), through hcmeasure's one loader.
        _, model = load_model(cfg, cfg.MODEL.WEIGHTS or None, strict=False, resume=args.resume,
                              config_file=args.config_file)
        logging.getLogger("detectron2").info("Model:\n%s", model)
        res = Trainer.test(cfg, model)
        if comm.is_main_process():
            verify_results(cfg, res)
        return res
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


if __name__ == "__main__":
    args = default_argument_parser().parse_args()
    launch(
        main,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )
