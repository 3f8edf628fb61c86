"""Pretrained extractors: ImageNet backbones and their weights, frozen features, musicnn."""
