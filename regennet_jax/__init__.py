"""regennet_jax: ReGenNet (online human action-reaction synthesis) in JAX/Flax."""
