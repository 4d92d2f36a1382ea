"""Medical segmentation metrics of the polyp studies, as a Detectron2 evaluator.

From the pixel counts of a class against the rest — TP, FP, TN, FN, pixels labelled
``ignore_label`` left out (:mod:`hcmeasure.semseg.confusion`) — the GLoFF-Net study's
metrics are

* Jaccard      JA = TP / (TP + FP + FN)
* Dice         DI = 2 TP / (2 TP + FP + FN)
* sensitivity  SE = TP / (TP + FN)
* specificity  SP = TN / (TN + FP)
* accuracy     ACC = (TP + TN) / (TP + FP + TN + FN)

each reported two ways, as fractions in [0, 1]:

* ``*_pooled``: TP, FP, TN, FN summed over every pixel of every image, then the formula
  (large polyps weigh more);
* ``*_mean_img``: the formula per image, then the mean over images (every image weighs
  the same). An image with neither ground truth nor prediction of the class has JA = DI
  = 1; SE is undefined without positive pixels and SP without negative ones: such images
  are left out of that mean (``n_img_SE``/``n_img_SP`` say how many were averaged).

The main figures (``JA_pooled`` ... ``ACC_mean_img``) are for "polyp" against background:
class 1 of a binary dataset, the union of all non-background classes otherwise. With
more than one foreground class (BKAI-IGH NeoPolyp) there are also, per class ``name``,
``DI_pooled-name``, ``DI_mean_img-name``, ``JA_pooled-name``, ``JA_mean_img-name``, and
their means over the foreground classes ``mDI_pooled``, ``mDI_mean_img``, ``mJA_pooled``,
``mJA_mean_img``. ``mDI_mean_img`` — the mean Dice over all (image, foreground class)
pairs, an absent class predicted absent counting 1 — is computed the way the BKAI-IGH
leaderboard's mean Dice is computed over the submission's rows.

Results go under the ``"medseg"`` key (``medseg/JA_pooled`` ... in ``metrics.json``);
per-image counts and values are written to ``OUTPUT_DIR/medseg_per_image.csv``.
"""
from __future__ import annotations

import itertools
import logging
import math
import os
from collections import OrderedDict

import numpy as np

import detectron2.utils.comm as comm
from detectron2.data import MetadataCatalog
from detectron2.evaluation import DatasetEvaluator

from ...evaluation.registry import EVALUATOR_REGISTRY, register_evaluator_builder
from ...io.tables import write_csv_atomic
from ...semseg.confusion import confusion_counts, ratios
from ...semseg.data import decode_label

__all__ = ["metrics_from_counts", "summarize", "MedSegEvaluator"]

logger = logging.getLogger(__name__)

METRICS = ("JA", "DI", "SE", "SP", "ACC")
#: The study's abbreviations of the ratios of :func:`hcmeasure.semseg.confusion.ratios`.
_RATIO_OF = {"JA": "jaccard", "DI": "dice", "SE": "sensitivity", "SP": "specificity", "ACC": "accuracy"}


def metrics_from_counts(tp, fp, tn, fn) -> dict[str, float]:
    """JA, DI, SE, SP, ACC from pixel counts (:func:`hcmeasure.semseg.confusion.ratios`; see
    the module docstring for empty cases)."""
    r = ratios(tp, fp, tn, fn)
    return {name: r[key] for name, key in _RATIO_OF.items()}


def _nanmean(values) -> tuple[float, int]:
    arr = np.asarray([v for v in values if not math.isnan(v)], dtype=float)
    return (float(arr.mean()) if arr.size else math.nan), int(arr.size)


def summarize(per_image_counts: list[np.ndarray], class_names) -> "OrderedDict[str, float]":
    """Dataset figures from the per-image arrays of :func:`confusion_counts`."""
    num_classes = len(class_names)
    res: OrderedDict[str, float] = OrderedDict()
    if not per_image_counts:
        return res
    counts = np.stack(per_image_counts)  # (images, classes + 1, 4)
    fg_row = 1 if num_classes == 2 else num_classes
    pooled = metrics_from_counts(*counts[:, fg_row].sum(axis=0).tolist())
    per_img = [metrics_from_counts(*c[fg_row].tolist()) for c in counts]
    for m in METRICS:
        res[f"{m}_pooled"] = pooled[m]
    averaged = {}
    for m in METRICS:
        res[f"{m}_mean_img"], averaged[m] = _nanmean(r[m] for r in per_img)
    if num_classes > 2:
        for m in ("DI", "JA"):
            pooled_c, mean_c = [], []
            for c in range(1, num_classes):
                pv = metrics_from_counts(*counts[:, c].sum(axis=0).tolist())[m]
                mv, _ = _nanmean(metrics_from_counts(*x[c].tolist())[m] for x in counts)
                res[f"{m}_pooled-{class_names[c]}"] = pv
                res[f"{m}_mean_img-{class_names[c]}"] = mv
                pooled_c.append(pv)
                mean_c.append(mv)
            res[f"m{m}_pooled"] = float(np.mean(pooled_c))
            res[f"m{m}_mean_img"] = float(np.mean(mean_c))
    res["n_images"] = len(per_image_counts)
    res["n_img_SE"], res["n_img_SP"] = averaged["SE"], averaged["SP"]
    return res


class MedSegEvaluator(DatasetEvaluator):
    """JA/DI/SE/SP/ACC (pooled and mean over images) of ``sem_seg`` predictions.

    Ground truth is read with the dataset's label decoder (``sem_seg_decoder`` of each
    dict, else the metadata's ``label_decoder``); predictions are the arg-max of the
    model's ``sem_seg`` scores, at the ground truth's size.
    """

    def __init__(self, dataset_name: str, output_dir: str | None = None, distributed: bool = True):
        meta = MetadataCatalog.get(dataset_name)
        self._dataset_name = dataset_name
        self._class_names = list(meta.stuff_classes)
        self._ignore_label = meta.get("ignore_label", 255)
        self._decoder = meta.get("label_decoder", "index_png")
        self._output_dir = output_dir
        self._distributed = distributed
        self.reset()

    def reset(self):
        self._rows: list[tuple[str, np.ndarray]] = []

    def process(self, inputs, outputs):
        for inp, out in zip(inputs, outputs):
            pred = out["sem_seg"].argmax(dim=0).cpu().numpy()
            gt_file = inp["sem_seg_file_name"]
            gt = decode_label(gt_file, inp.get("sem_seg_decoder", self._decoder))
            if gt.shape != pred.shape:
                raise ValueError(f"{gt_file}: ground truth {gt.shape[::-1]} and prediction {pred.shape[::-1]} "
                                 "(width x height) differ; the model must predict at the dataset dict's "
                                 "height/width")
            counts = confusion_counts(pred, gt, len(self._class_names), self._ignore_label)
            self._rows.append((inp["file_name"], counts))

    def evaluate(self):
        rows = self._rows
        if self._distributed:
            comm.synchronize()
            rows = list(itertools.chain(*comm.all_gather(self._rows)))
            if not comm.is_main_process():
                return None
        if not rows:
            logger.warning("MedSegEvaluator on %s: no predictions", self._dataset_name)
            return {}
        res = summarize([c for _, c in rows], self._class_names)
        if self._output_dir:
            self._write_per_image(rows)
        lines = [f"{k:>28s}: {v:.4f}" if isinstance(v, float) else f"{k:>28s}: {v}" for k, v in res.items()]
        logger.info("Medical segmentation metrics on %s (pooled = over all pixels; mean_img = mean over "
                    "images):\n%s", self._dataset_name, "\n".join(lines))
        return OrderedDict(medseg=res)

    def _write_per_image(self, rows):
        n = len(self._class_names)
        names = list(self._class_names) + ["foreground"]
        columns = ["file_name"]
        for name in names:
            columns += [f"{name}_{k}" for k in ("TP", "FP", "TN", "FN", "DI", "JA")]
        table = []
        for file_name, counts in rows:
            row = {"file_name": file_name}
            for c, name in enumerate(names[: n + 1]):
                tp, fp, tn, fn = counts[c].tolist()
                m = metrics_from_counts(tp, fp, tn, fn)
                row.update({f"{name}_TP": tp, f"{name}_FP": fp, f"{name}_TN": tn, f"{name}_FN": fn,
                            f"{name}_DI": f"{m['DI']:.6f}", f"{name}_JA": f"{m['JA']:.6f}"})
            table.append(row)
        os.makedirs(self._output_dir, exist_ok=True)
        write_csv_atomic(os.path.join(self._output_dir, "medseg_per_image.csv"), columns, table)


@register_evaluator_builder("medseg")
def build_medseg_evaluators(cfg, dataset_name, output_folder):
    """Polyp datasets: Detectron2's SemSegEvaluator (mIoU, ...) and :class:`MedSegEvaluator`."""
    return EVALUATOR_REGISTRY.get("sem_seg")(cfg, dataset_name, output_folder) + [
        MedSegEvaluator(dataset_name, output_dir=output_folder)]
