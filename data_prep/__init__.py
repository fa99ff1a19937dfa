"""Command-line converters from raw or released datasets to regennet_jax's on-disk format."""
