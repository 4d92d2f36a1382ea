"""Datasets: readers, converters and Detectron2 registration."""
from . import hc18  # noqa: F401  (registers hc18_train / hc18_val / hc18_test)
from . import voc  # noqa: F401  (registers voc_2012_sem_seg_{train,val,trainval,train_aug})
from . import polyp  # noqa: F401  (registers kvasir_seg_*, cvc_colondb_*, pranet_*, neopolyp_*)
from . import cells  # noqa: F401  (registers cells_train / cells_val; the "rgba_outline" label decoder)
