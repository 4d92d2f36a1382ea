"""Detectron2 works with the installed numpy/setuptools through hcmeasure's documented fixes."""
import importlib.metadata as md

import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from PIL import Image

from hcmeasure.semseg.evaluation import SemSegEvaluator


def test_detectron2_is_installed_as_a_visible_distribution_without_C():
    import detectron2

    assert md.version("detectron2")  # pip / importlib.metadata see it
    assert detectron2.__file__.endswith("detectron2/__init__.py")
    with pytest.raises(ImportError):
        from detectron2 import _C  # noqa: F401  (the repack carries no compiled extension)


def test_model_zoo_imports():
    """detectron2.model_zoo needs pkg_resources: setuptools<81 is pinned for it."""
    from detectron2 import model_zoo

    assert model_zoo.get_config_file("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml")


@pytest.fixture
def tiny_semseg(tmp_path):
    gt = np.array([[0, 1], [1, 255]], dtype=np.uint8)
    path = tmp_path / "gt.png"
    Image.fromarray(gt).save(path)
    name = "hcmeasure_compat_semseg"
    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    DatasetCatalog.register(name, lambda: [{"file_name": "img.png", "sem_seg_file_name": str(path)}])
    MetadataCatalog.get(name).set(stuff_classes=["bg", "fg"], ignore_label=255)
    yield name
    DatasetCatalog.remove(name)
    MetadataCatalog.remove(name)


def test_semseg_evaluator_runs_under_numpy_2(tiny_semseg):
    from detectron2.evaluation import SemSegEvaluator as Upstream

    logits = torch.tensor([[[5.0, -5.0], [5.0, 0.0]], [[-5.0, 5.0], [-5.0, 0.0]]])  # predicts [[0,1],[0,*]]
    if int(np.__version__.split(".")[0]) >= 2:
        upstream = Upstream(tiny_semseg, distributed=False)
        upstream.reset()
        with pytest.raises(ValueError):
            upstream.process([{"file_name": "img.png"}], [{"sem_seg": logits}])
    ev = SemSegEvaluator(tiny_semseg, distributed=False)
    ev.reset()
    ev.process([{"file_name": "img.png"}], [{"sem_seg": logits}])
    res = ev.evaluate()["sem_seg"]
    # 3 labelled pixels: (0,0)=0 right, (0,1)=1 right, (1,0)=1 predicted 0 -> 2/3 correct
    assert res["pACC"] == pytest.approx(100 * 2 / 3)
    assert res["IoU-bg"] == pytest.approx(50.0) and res["IoU-fg"] == pytest.approx(50.0)
