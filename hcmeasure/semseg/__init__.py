"""The semantic-segmentation base shared by the head refiner and the sister studies.

* :class:`SemanticSegmentor` (``segmentor.py``): Detectron2's semantic protocol (normalise,
  pad, losses in training, per-class ``sem_seg`` scores at inference);
* :class:`UNet` (``unet.py``): the one U-Net, any encoder of ``parts/``, tiled inference
  as an option (``tiling.py``);
* ``parts/`` (encoders, decoders, blocks), ``losses.py``;
* ``data.py``: label decoders and :class:`SemanticDatasetMapper`;
* ``confusion.py``: pixel confusion counts and the ratios of every segmentation metric;
* ``evaluation.py``: Detectron2's ``SemSegEvaluator`` (numpy-2-safe) for ``evaluator_type``
  "sem_seg";
* ``config.py``: :func:`add_semseg_config`.

Importing the package registers ``UNet`` (META_ARCH_REGISTRY), the ``index_png`` label
decoder and the "sem_seg" evaluator builder. It imports none of the studies.
"""
from .config import add_semseg_config  # noqa: F401
from .data import SemanticDatasetMapper, decode_label  # noqa: F401  (registers "index_png")
from .evaluation import SemSegEvaluator  # noqa: F401  (registers evaluator_type "sem_seg")
from .segmentor import SemanticSegmentor  # noqa: F401
from .unet import UNet  # noqa: F401  (registers "UNet")
