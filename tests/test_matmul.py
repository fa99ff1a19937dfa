"""matmul.operands_in: bfloat16 products with float32 accumulation, forward and backward."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from regennet_jax import matmul

# (lhs shape, rhs shape, dimension numbers): Dense, DenseGeneral into and out of heads, a weight
# contracted on its trailing axis, contracting axes given out of order, and two batched products.
CASES = [((4, 5, 8), (8, 3), (((2,), (0,)), ((), ()))),
         ((4, 5, 8), (8, 2, 3), (((2,), (0,)), ((), ()))),
         ((4, 5, 2, 3), (2, 3, 7), (((2, 3), (0, 1)), ((), ()))),
         ((6, 8), (3, 8), (((1,), (1,)), ((), ()))),
         ((4, 3, 2), (2, 5, 3), (((1, 2), (2, 0)), ((), ()))),
         ((2, 4, 3, 8), (2, 3, 8, 5), (((3,), (2,)), ((0, 2), (0, 1)))),
         ((2, 3, 4, 5), (2, 3, 6, 5), (((3,), (3,)), ((0, 1), (0, 1)))),]


def _rounded(x):
  return x.astype(jnp.bfloat16).astype(jnp.float32)


@pytest.mark.parametrize('lhs_shape, rhs_shape, dims', CASES)
def test_value_and_gradients_are_the_float32_ones_of_bfloat16_operands(lhs_shape, rhs_shape, dims):
  k1, k2 = jax.random.split(jax.random.PRNGKey(0))
  lhs, rhs = jax.random.normal(k1, lhs_shape), jax.random.normal(k2, rhs_shape)
  dot = matmul.operands_in('bfloat16')
  loss = lambda f: lambda a, b: jnp.sum(jnp.sin(f(a, b, dims)))
  reference = lambda a, b, d: jax.lax.dot_general(_rounded(a), _rounded(b), d)

  out = dot(lhs, rhs, dims)
  assert out.dtype == jnp.float32
  np.testing.assert_allclose(out, reference(lhs, rhs, dims), rtol=1e-5, atol=1e-5)
  got = jax.grad(loss(dot), (0, 1))(lhs, rhs)
  want = jax.grad(loss(reference), (0, 1))(lhs, rhs)
  for g, w in zip(got, want):
    assert g.shape == w.shape and g.dtype == jnp.float32
    # Only the cotangent's bfloat16 rounding apart (~0.4%); a misplaced axis would be O(1).
    assert float(jnp.max(jnp.abs(g - w)) / jnp.max(jnp.abs(w))) < 1e-2


def test_backward_products_of_dense_layers_take_bfloat16_operands():
  dot = matmul.operands_in('bfloat16')
  x, w = jnp.ones((4, 5, 8)), jnp.ones((8, 16))
  grad = jax.jit(jax.grad(lambda x, w: jnp.sum(dot(x, w, (((2,), (0,)), ((), ())))**2), (0, 1)))
  text = grad.lower(x, w).as_text()
  products = re.findall(r'dot_general.*\((tensor<\S*>), (tensor<\S*>)\) -> (tensor<\S*>)', text)
  assert len(products) == 3, products  # forward, input gradient, weight gradient
  for operands_and_result in products:
    assert [t.endswith('xbf16>') for t in operands_and_result] == [True, True, False]
    assert operands_and_result[2].endswith('xf32>')


@pytest.mark.parametrize('lhs_shape, rhs_shape, dims', CASES)
def test_float32_value_and_gradients_are_autodiff_ones(lhs_shape, rhs_shape, dims):
  k1, k2 = jax.random.split(jax.random.PRNGKey(1))
  lhs, rhs = jax.random.normal(k1, lhs_shape), jax.random.normal(k2, rhs_shape)
  dot = matmul.operands_in(None)
  loss = lambda f: lambda a, b: jnp.sum(jnp.sin(f(a, b, dims)))
  reference = lambda a, b, d: jax.lax.dot_general(a, b, d)
  np.testing.assert_allclose(dot(lhs, rhs, dims), reference(lhs, rhs, dims), rtol=1e-6, atol=1e-5)
  got = jax.grad(loss(dot), (0, 1))(lhs, rhs)
  want = jax.grad(loss(reference), (0, 1))(lhs, rhs)
  for g, w in zip(got, want):
    assert g.shape == w.shape and g.dtype == jnp.float32
    np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


def test_float32_weight_gradient_contracts_the_tokens_as_one_axis():
  dot = matmul.operands_in(None)
  x, w = jnp.ones((4, 5, 8)), jnp.ones((8, 16))
  grad = jax.jit(jax.grad(lambda w: jnp.sum(dot(x, w, (((2,), (0,)), ((), ())))**2)))
  text = grad.lower(w).as_text()
  products = re.findall(r'dot_general.*\((tensor<\S*>), (tensor<\S*>)\) -> (tensor<\S*>)', text)
  # The forward product and the [20, 8] x [20, 16] weight gradient (no input gradient asked for).
  assert ('tensor<20x8xf32>', 'tensor<20x16xf32>', 'tensor<8x16xf32>') in products, products


def test_a_result_sharding_asked_for_is_the_result_sharding():
  # Under a mesh with explicit axes a caller may name the product's sharding; it must hold (and
  # differentiate), not be dropped for the one inferred from the operands.
  from jax.sharding import AxisType, NamedSharding, PartitionSpec as P
  mesh = jax.make_mesh((1,), ('data',), axis_types=(AxisType.Explicit,))
  dot = matmul.operands_in('bfloat16')
  dims = (((1,), (0,)), ((), ()))
  with jax.set_mesh(mesh):
    lhs = jax.device_put(jnp.ones((4, 8)), NamedSharding(mesh, P('data', None)))
    rhs = jax.device_put(jnp.ones((8, 6)), NamedSharding(mesh, P()))
    product = jax.jit(lambda a, b: dot(a, b, dims, out_sharding=P(None, 'data')))
    out = product(lhs, rhs)
    grad = jax.jit(jax.grad(lambda a, b: jnp.sum(product(a, b)), (0, 1)))(lhs, rhs)
  assert out.sharding.spec == P(None, 'data')
  np.testing.assert_allclose(out, 8.0)
  np.testing.assert_allclose(grad[0], 6.0)
  np.testing.assert_allclose(grad[1], 4.0)
