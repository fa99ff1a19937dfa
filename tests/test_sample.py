"""The batched sampler: chunked denoiser passes and their equivalence to one whole-batch pass."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from regennet_jax import diffusion
from regennet_jax import sample
from regennet_jax.model import Denoiser

TINY = dict(num_layers=2, latent_dim=32, ff_size=64, num_heads=4)


def test_map_in_chunks_equals_one_pass_for_rowwise_functions():
  sizes = []

  def fn(x, y):
    sizes.append(x.shape[0])
    return x * 2 + y[:, None]

  x = jnp.arange(6 * 3, dtype=jnp.float32).reshape(6, 3)
  y = jnp.arange(6, dtype=jnp.float32) * 100
  for chunk_size, expected_rows in ((4, 3), (2, 2), (1, 1), (0, 6), (None, 6), (10, 6)):
    sizes.clear()
    np.testing.assert_array_equal(sample.map_in_chunks(fn, (x, y), chunk_size), x * 2 + y[:, None])
    assert sizes == [expected_rows], (chunk_size, sizes)  # fewest even chunks of <= chunk_size


def test_chunks_take_strided_rows_so_each_spans_every_device_block():
  # fn gives every row its chunk's sum. 8 rows in chunks of 2 -> chunk c = rows {c, c + 4} (one
  # row from each half, i.e. from each device's block when sharded), whose sum is 2c + 4.
  fn = lambda x: jnp.broadcast_to(x.sum(), x.shape)
  out = jax.jit(lambda x: sample.map_in_chunks(fn, (x,), 2))(jnp.arange(8.0))
  np.testing.assert_array_equal(out, [2 * (r % 4) + 4 for r in range(8)])


def test_resolve_chunk_size():
  assert sample.resolve_chunk_size(0, backend='cpu') == sample.CPU_CHUNK_SIZE
  assert sample.resolve_chunk_size(0, backend='tpu') is None
  assert sample.resolve_chunk_size(8, backend='gpu') == 8
  with pytest.raises(ValueError, match='sample.chunk_size must be >= 0'):
    sample.resolve_chunk_size(-1)


@pytest.mark.parametrize('method, guidance', [('ddim', 2.5), ('ddpm', 1.0)])
def test_chunked_sampler_matches_the_whole_batch_sampler(method, guidance):
  model = Denoiser(cond_mode='action', num_actions=4, cond_mask_prob=0.1, **TINY)
  rng = np.random.default_rng(0)
  actor = jnp.asarray(rng.normal(size=(6, 8, 56, 6)).astype(np.float32))
  label = jnp.array([0, 1, 2, 3, 0, 1])
  params = model.init(jax.random.PRNGKey(0), actor[:1], label[:1], actor[:1], label[:1])['params']
  sched = diffusion.make_schedule('cosine', 1000, 'ddim5')
  key = jax.random.PRNGKey(4)
  run = lambda chunk: np.asarray(
      jax.jit(sample.make_sampler(model, sched, method, guidance_scale=guidance, chunk_size=chunk))
      (params, actor, label, key))
  whole = run(6)
  np.testing.assert_allclose(run(2), whole, atol=1e-5)
  np.testing.assert_allclose(run(4), whole, atol=1e-5)  # 2 chunks of 3
  assert np.abs(whole[:3] - whole[3:]).max() > 0.1  # rows differ, so a row mix-up would show
