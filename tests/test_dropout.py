"""Dropout masks: JAX's Threefry written out, their statistics, and what XLA makes of them."""

import json
import subprocess
import sys
import textwrap

import flax.linen as nn
from jax.extend import random as jax_random
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from regennet_jax import dropout
from tests.helpers import ROOT, forced_devices_env


def test_threefry_is_jaxs_threefry():
  rng = np.random.default_rng(0)
  words = lambda *shape: jnp.asarray(rng.integers(0, 2**32, shape, dtype=np.uint64), jnp.uint32)
  for _ in range(3):
    key, x0, x1 = words(2), words(5, 7), words(5, 7)
    want = jax_random.threefry2x32_p.bind(key[0], key[1], x0, x1)
    got = jax.jit(dropout.threefry2x32)(key, x0, x1)
    for g, w in zip(got, want):
      np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize('rate', [0.1, 0.5, 0.9])
def test_masks_drop_the_rate_independently_of_neighbours(rate):
  shape = (64, 7, 61)  # a last axis that is not a multiple of four
  keep = np.asarray(dropout.keep_mask(jax.random.PRNGKey(3), shape, rate)).astype(np.float64)
  assert keep.shape == shape
  n = keep.size
  p = 1 - dropout.drop_threshold(rate)[0] / 65536
  assert abs(keep.mean() - p) < 5 * np.sqrt(p * (1 - p) / n)
  # Neighbours along every axis (within a 16-bit lane group and across blocks) are uncorrelated.
  for axis in range(3):
    a, b = np.moveaxis(keep, axis, 0)[:-1].ravel(), np.moveaxis(keep, axis, 0)[1:].ravel()
    assert abs(np.corrcoef(a, b)[0, 1]) < 5 / np.sqrt(a.size), axis
  # Each of the four uniforms of a block decides about as often as the others.
  lanes = keep[..., :60].reshape(-1, 4).mean(0)
  assert np.all(np.abs(lanes - p) < 5 * np.sqrt(p * (1 - p) / (n / 4)))
  other = np.asarray(dropout.keep_mask(jax.random.PRNGKey(4), shape, rate)).astype(np.float64)
  assert abs(np.corrcoef(keep.ravel(), other.ravel())[0, 1]) < 5 / np.sqrt(n)


def test_a_mask_is_a_function_of_key_and_shape():
  key = jax.random.PRNGKey(7)
  first = dropout.keep_mask(key, (3, 9), 0.3)
  np.testing.assert_array_equal(first,
                                jax.jit(dropout.keep_mask, static_argnums=(1, 2))(key, (3, 9), 0.3))
  # New-style typed keys give the same mask as their raw data.
  np.testing.assert_array_equal(first, dropout.keep_mask(jax.random.wrap_key_data(key), (3, 9),
                                                         0.3))
  assert dropout.keep_mask(key, (), 0.3).shape == ()


def test_dropout_keeps_the_mean_and_its_edges():
  x = jnp.full((4000, 50), 2.0)
  key = jax.random.PRNGKey(0)
  out = np.asarray(dropout.apply(key, x, 0.1))
  kept = out != 0
  np.testing.assert_allclose(out[kept], 2.0 * 65536 / (65536 - 6554), rtol=1e-6)
  assert abs(out.mean() - 2.0) < 5 * 2.0 * np.sqrt(0.1 / 0.9 / out.size)
  np.testing.assert_array_equal(dropout.apply(key, x, 0.0), x)
  np.testing.assert_array_equal(dropout.apply(key, x, 1.0), jnp.zeros_like(x))
  module = dropout.Dropout(0.5)
  np.testing.assert_array_equal(module.apply({}, x, deterministic=True), x)
  train = np.asarray(module.apply({}, x, deterministic=False, rngs={'dropout': key}))
  assert train.shape == x.shape and train.dtype == np.float32
  np.testing.assert_array_equal(np.unique(train), [0.0, 4.0])
  assert 0.49 < float(np.mean(train == 0)) < 0.51


def test_compiled_dropout_has_no_loop():
  # jax.random.bernoulli's Threefry is a five-iteration loop on CPU, each a pass over the mask.
  hlo = jax.jit(lambda k, x: dropout.apply(k, x, 0.1)).lower(jax.random.PRNGKey(0), jnp.ones(
      (8, 64))).compile().as_text()
  assert 'while' not in hlo
  flax_hlo = jax.jit(lambda k, x: nn.Dropout(0.1).apply({}, x, False, rngs={'dropout': k})).lower(
      jax.random.PRNGKey(0), jnp.ones((8, 64))).compile().as_text()
  assert 'while' in flax_hlo  # what the check would catch


def test_forward_and_backward_hash_the_mask_once():
  # A mask used by several products is hashed once and stored, not hashed again inside each
  # consumer (XLA would otherwise fuse the whole hash into the backward pass's products too).
  key, x = jax.random.PRNGKey(0), jnp.ones((16, 64))
  rounds = lambda f: jax.jit(f).lower(key, x).compile().as_text().count(' xor(')
  forward = rounds(lambda k, x: jnp.sin(dropout.apply(k, x, 0.1)) @ x.T)
  both = rounds(jax.grad(lambda k, x: jnp.sum(jnp.sin(dropout.apply(k, x, 0.1)) @ x.T), 1))
  assert forward >= 20  # the hash's rounds are there to count
  assert both == forward, (both, forward)


_SHARDED_SCRIPT = textwrap.dedent('''
    import json
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import NamedSharding, PartitionSpec as P
    from regennet_jax import dropout
    mesh = jax.make_mesh((2,), ('data',))
    key = jax.random.PRNGKey(11)
    x = jnp.arange(6 * 5 * 64, dtype=jnp.float32).reshape(6, 5, 64)
    whole = np.asarray(jax.jit(lambda k, x: dropout.apply(k, x, 0.1))(key, x))
    out = {}
    for spec in (P('data'), P(None, None, 'data')):
      sharded = jax.device_put(x, NamedSharding(mesh, spec))
      got = jax.jit(lambda k, x: dropout.apply(k, x, 0.1),
                    out_shardings=NamedSharding(mesh, spec))(key, sharded)
      out[str(spec)] = [len(got.addressable_shards), float(np.abs(np.asarray(got) - whole).max())]
    print(json.dumps(out))
''')


def test_a_mask_is_the_same_however_its_array_is_sharded():
  env = forced_devices_env(2)
  proc = subprocess.run([sys.executable, '-c', _SHARDED_SCRIPT],
                        env=env,
                        capture_output=True,
                        text=True,
                        timeout=300,
                        cwd=ROOT)
  assert proc.returncode == 0, proc.stderr[-3000:]
  for spec, (shards, diff) in json.loads(proc.stdout.strip().splitlines()[-1]).items():
    assert shards == 2 and diff == 0.0, spec
