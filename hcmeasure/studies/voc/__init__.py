"""PASCAL VOC 2012 semantic segmentation: EDNet and its FCN baseline.

Importing registers the datasets ``voc_2012_sem_seg_{train,val,trainval,train_aug}``
(``data.py``; evaluated by the base's "sem_seg" evaluator) and the meta-architecture
"EDNet" (``ednet.py``; the FCN is EDNet with its four modules off). Configs:
``configs/VOC2012/``.
"""
from .config import add_voc_config  # noqa: F401
from . import data  # noqa: F401  (registers the datasets)
from .ednet import EDNet  # noqa: F401  (registers "EDNet")
