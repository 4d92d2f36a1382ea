"""Models: backbones and meta-architectures registered in Detectron2's registries."""
