"""Datasets: the embedded synthetic interactions, real-dataset readers, and the input pipeline."""
