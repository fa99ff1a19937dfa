"""layer_norm's values and its written-out backward against float64 and autodiff references."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from regennet_jax import layer_norm


def _inputs(seed, shape=(3, 7, 16)):
  rng = np.random.default_rng(seed)
  x = rng.normal(2.0, 3.0, size=shape).astype(np.float32)  # an offset the mean must remove
  scale = rng.normal(1.0, 0.3, size=shape[-1:]).astype(np.float32)
  bias = rng.normal(0.0, 0.3, size=shape[-1:]).astype(np.float32)
  return x, scale, bias


def test_values_are_the_float64_definition():
  x, scale, bias = _inputs(0)
  x64 = x.astype(np.float64)
  mean = x64.mean(-1, keepdims=True)
  var = ((x64 - mean)**2).mean(-1, keepdims=True)
  want = (x64 - mean) / np.sqrt(var + 1e-5) * scale + bias
  np.testing.assert_allclose(layer_norm.layer_norm(x, scale, bias), want, atol=2e-6)


@pytest.mark.parametrize('shape', [(3, 7, 16), (5, 16), (2, 3, 4, 8)])
def test_gradients_are_autodiff_ones(shape):
  x, scale, bias = _inputs(1, shape)
  cotangent = jnp.asarray(np.random.default_rng(2).normal(size=shape), jnp.float32)

  def autodiff(x, scale, bias):  # the same definition, differentiated by JAX
    centred = x - jnp.mean(x, -1, keepdims=True)
    return centred / jnp.sqrt(jnp.mean(centred**2, -1, keepdims=True) + 1e-5) * scale + bias

  grads = lambda f: jax.grad(lambda *a: jnp.sum(f(*a) * cotangent), (0, 1, 2))(x, scale, bias)
  for got, want in zip(grads(layer_norm.layer_norm), grads(autodiff)):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-5)


def test_module_is_flax_layer_norm_with_the_same_parameters():
  x, _, _ = _inputs(3)
  ours, flax = layer_norm.LayerNorm(epsilon=1e-5), nn.LayerNorm(epsilon=1e-5)
  params = flax.init(jax.random.PRNGKey(0), x)
  assert jax.tree.map(jnp.shape, ours.init(jax.random.PRNGKey(0),
                                           x)) == jax.tree.map(jnp.shape, params)
  params = jax.tree.map(lambda p: p + 0.1 * np.arange(p.size, dtype=np.float32), params)
  np.testing.assert_allclose(ours.apply(params, x), flax.apply(params, x), atol=1e-5)
  grad = lambda m: jax.grad(lambda p: jnp.sum(m.apply(p, x)**3))(params)
  for got, want in zip(jax.tree.leaves(grad(ours)), jax.tree.leaves(grad(flax))):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)


def test_bfloat16_activations_are_normalised_in_float32():
  x, _, _ = _inputs(4)
  module = layer_norm.LayerNorm(dtype=jnp.bfloat16)
  params = module.init(jax.random.PRNGKey(0), x)
  got = module.apply(params, jnp.asarray(x, jnp.bfloat16))
  assert got.dtype == jnp.bfloat16
  want = layer_norm.LayerNorm().apply(params, jnp.asarray(x, jnp.bfloat16).astype(jnp.float32))
  np.testing.assert_allclose(got.astype(np.float32), want, atol=2e-2)
