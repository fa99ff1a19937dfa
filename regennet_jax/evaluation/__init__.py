"""Evaluation as the paper: an ST-GCN action recognizer and FID / accuracy / diversity / multimodality."""
