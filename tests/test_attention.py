"""attention.dot_product_attention against flax's own, forward and backward, and its dropout."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from regennet_jax import attention
from regennet_jax import dropout
from regennet_jax import matmul


def _qkv(seed, batch=2, q_len=5, k_len=5, heads=3, depth=4):
  rng = np.random.default_rng(seed)
  shape = lambda length: (batch, length, heads, depth)
  return (jnp.asarray(rng.normal(size=shape(q_len)),
                      jnp.float32), jnp.asarray(rng.normal(size=shape(k_len)), jnp.float32),
          jnp.asarray(rng.normal(size=shape(k_len)), jnp.float32))


MASKS = {
    'causal':
        lambda b, q, k: nn.make_causal_mask(jnp.ones((1, q)), dtype=bool),
    'per-sample keys':
        lambda b, q, k: nn.make_attention_mask(jnp.ones((b, q), bool),
                                               jnp.arange(k)[None] < jnp.array([k, 2])[:, None]),
    'none':
        lambda b, q, k: None,
}


@pytest.mark.parametrize('mask_name', sorted(MASKS))
def test_values_and_gradients_are_flax_ones(mask_name):
  q, k, v = _qkv(1, q_len=5, k_len=5)
  mask = MASKS[mask_name](2, 5, 5)
  ours = lambda q, k, v: attention.dot_product_attention(q, k, v, mask=mask, deterministic=True)
  flax = lambda q, k, v: nn.dot_product_attention(q, k, v, mask=mask, deterministic=True)
  np.testing.assert_allclose(ours(q, k, v), flax(q, k, v), atol=1e-6)
  cotangent = jnp.asarray(np.random.default_rng(2).normal(size=q.shape), jnp.float32)
  grads = lambda f: jax.grad(lambda *a: jnp.sum(f(*a) * cotangent), argnums=(0, 1, 2))(q, k, v)
  for got, want in zip(grads(ours), grads(flax)):
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_keys_and_queries_may_differ_in_length_and_values_in_depth():
  q, k, _ = _qkv(3, q_len=4, k_len=7)
  _, _, v = _qkv(3, q_len=4, k_len=7, depth=6)
  np.testing.assert_allclose(attention.dot_product_attention(q, k, v, deterministic=True),
                             nn.dot_product_attention(q, k, v, deterministic=True),
                             atol=1e-6)


def test_weights_are_dropped_element_wise_by_keep_mask():
  q, k, v = _qkv(4)
  mask = nn.make_causal_mask(jnp.ones((2, 5)))
  key = jax.random.PRNGKey(5)
  got = attention.dot_product_attention(q, k, v, mask=mask, dropout_rng=key, dropout_rate=0.4)
  weights = nn.dot_product_attention_weights(q, k, mask=mask, deterministic=True)  # [B, H, Tq, Tk]
  keep = dropout.keep_mask(key, weights.shape, 0.4)
  scale = dropout.drop_threshold(0.4)[1]
  want = jnp.einsum('...hqk,...khd->...qhd', jnp.where(keep, weights * scale, 0), v)
  np.testing.assert_allclose(got, want, atol=1e-6)
  assert not np.allclose(got, nn.dot_product_attention(q, k, v, mask=mask, deterministic=True))


def test_bfloat16_products_round_operands_only():
  q, k, v = _qkv(6)
  einsum = lambda *a, **kw: jnp.einsum(*a, **kw, _dot_general=matmul.operands_in('bfloat16'))
  got = attention.dot_product_attention(q,
                                        k,
                                        v,
                                        deterministic=True,
                                        qk_attn_weights_einsum=einsum,
                                        attn_weights_value_einsum=einsum)
  assert got.dtype == jnp.float32
  want = nn.dot_product_attention(q, k, v, deterministic=True)
  error = float(jnp.max(jnp.abs(got - want)))
  assert 1e-6 < error < 5e-2, error  # rounded (not float32), yet close


def test_products_batch_over_one_leading_axis():
  # The layout the speed comes from (module docstring): every product the forward and backward
  # passes lower to has one batch axis, axis 0, on both sides.
  q, k, v = _qkv(7)
  f = jax.grad(lambda q, k, v: jnp.sum(attention.dot_product_attention(q, k, v) * q), (0, 1, 2))
  hlo = jax.jit(f).lower(q, k, v).as_text(dialect='hlo')
  batch_dims = [
      line.split('lhs_batch_dims=')[1].split(',')[0] for line in hlo.splitlines() if ' dot(' in line
  ]
  assert len(batch_dims) == 6, hlo
  assert set(batch_dims) == {'{0}'}, batch_dims
