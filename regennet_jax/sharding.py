"""Devices and layouts: the ('data', 'model') Mesh and where each array lives on it.

Batches are split over 'data'. Parameters are replicated, except that with a 'model' axis larger
than 1, 2-D+ kernels whose last dimension divides evenly are split over it; optimizer moments and
EMA copies follow their parameter. Everything else is replicated.
"""

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from regennet_jax import errors


def make_mesh(model_parallel=1, devices=None):
  """A Mesh of `devices` (default: every device of every host) shaped [-1, model_parallel]."""
  devices = np.array(jax.devices() if devices is None else devices)
  if model_parallel < 1 or devices.size % model_parallel:
    raise errors.ConfigError(f'train.model_parallel={model_parallel} must be a positive divisor of '
                             f'the {devices.size} devices.')
  return Mesh(devices.reshape(-1, model_parallel), ('data', 'model'))


def sampling_mesh():
  """A data-parallel Mesh over every device of every host: sampling and evaluation split their
  batches over all of them (each host feeds the shards of its own devices)."""
  return make_mesh(1)


def param_sharding(mesh, params):
  """Replicated, except 2-D+ kernels whose last dim splits evenly over a 'model' axis > 1."""
  size = mesh.shape['model']

  def spec(x):
    if size > 1 and x.ndim >= 2 and x.shape[-1] % size == 0:
      return NamedSharding(mesh, P(*([None] * (x.ndim - 1)), 'model'))
    return NamedSharding(mesh, P())

  return jax.tree_util.tree_map(spec, params)


def state_sharding(mesh, abstract_state):
  """Shardings for a TrainState: optimizer moments and EMA follow their parameter's layout;
  scalars are replicated."""
  by_shape = {}
  for leaf, sh in zip(jax.tree_util.tree_leaves(abstract_state.params),
                      jax.tree_util.tree_leaves(param_sharding(mesh, abstract_state.params))):
    by_shape.setdefault((leaf.shape, leaf.dtype), sh)
  return jax.tree_util.tree_map(
      lambda x: by_shape.get((x.shape, x.dtype), NamedSharding(mesh, P())), abstract_state)


def batch_sharding(mesh):
  return NamedSharding(mesh, P('data'))


def replicated(mesh):
  return NamedSharding(mesh, P())


def shard_batch(batch, mesh):
  """This host's numpy batch (its share of the global batch) -> global jax.Arrays over 'data'."""
  sharding = batch_sharding(mesh)
  return {
      k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in batch.items()
  }
