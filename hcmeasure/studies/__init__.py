"""The sister studies, each in its own package over the semantic base :mod:`hcmeasure.semseg`.

* ``polyp/``: GLoFF-Net and the U-Nets on Kvasir-SEG, CVC-ColonDB, PraNet's split and
  BKAI-IGH NeoPolyp (docs/polyp.md);
* ``voc/``: EDNet and its FCN baseline on PASCAL VOC 2012 (docs/voc.md);
* ``cells/``: cell outlines in large microscopy images, the tiled U-Net (docs/cells.md).

Each keeps its config keys (``add_<study>_config``, composed by
:func:`hcmeasure.config.add_hcmeasure_config`), datasets, evaluator and models together;
importing it registers them. A study imports the base and the HC core's utilities, never
another study; the HC core imports no study.
"""
from . import cells, polyp, voc  # noqa: F401  (register their datasets, evaluators and models)
