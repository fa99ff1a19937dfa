"""regennet_jax.native: the hand-written few-row products and attention streams run on."""

import ctypes
import os
import types

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from regennet_jax import errors
from regennet_jax import matmul
from regennet_jax import native
from regennet_jax import streaming

pytestmark = pytest.mark.skipif(not native.available(),
                                reason=f'native kernels unavailable: {native.why_unavailable()}')

# (M, K, N): every row-block remainder (M mod 4), K not a multiple of the 4 rows read at once,
# N not a multiple of the 16 lanes of a vector, and a paper-size product.
SHAPES = [(1, 7, 5), (2, 33, 17), (3, 64, 48), (4, 5, 130), (5, 40, 31), (8, 19, 64),
          (2, 512, 1024)]


def _reference(x, w):
  return np.asarray(x, np.float64) @ np.asarray(jnp.asarray(w).astype(jnp.float32), np.float64)


def _operands(m, k, n, seed=0):
  rng = np.random.default_rng(seed)
  return (jnp.asarray(rng.normal(size=(m, k)),
                      jnp.float32), jnp.asarray(rng.normal(size=(k, n)), jnp.float32))


@pytest.mark.parametrize('dtype', [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize('m, k, n', SHAPES)
def test_few_rows_is_the_matrix_product(m, k, n, dtype):
  x, w = _operands(m, k, n)
  w = w.astype(dtype)  # a bfloat16 kernel is read as such: the reference widens the same values
  y = jax.jit(native.few_rows)(x, w)
  assert y.shape == (m, n) and y.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(y), _reference(x, w), rtol=1e-5, atol=1e-5 * np.sqrt(k))


@pytest.mark.parametrize('threads', [1, 3])
def test_any_number_of_threads_gives_the_same_product(threads):
  x, w = _operands(2, 300, 700, seed=1)  # big enough to be split over the threads
  before = native.threads()
  try:
    native.set_threads(threads)
    assert native.threads() == threads
    y = np.asarray(jax.jit(native.few_rows)(x, w))
  finally:
    native.set_threads(before)
  np.testing.assert_allclose(y, _reference(x, w), rtol=1e-5, atol=1e-4)


def test_concurrent_products_share_the_pool_safely():
  # Independent products XLA may run at once (a layer's query, key and value): whichever does not
  # get the pool computes alone; every result is still right.
  xs, ws = zip(*[_operands(1, 256, 384, seed=s) for s in range(6)])
  ys = jax.jit(lambda xs, ws: [native.few_rows(x, w) for x, w in zip(xs, ws)])(xs, ws)
  for x, w, y in zip(xs, ws, ys):
    np.testing.assert_allclose(np.asarray(y), _reference(x, w), rtol=1e-5, atol=1e-4)


def test_the_portable_loops_give_the_same_product(tmp_path, monkeypatch):
  # Machines without AVX-512 compile plain loops: build that variant here and check it too.
  monkeypatch.setenv('REGENNET_NATIVE_CACHE', str(tmp_path))
  lib = ctypes.cdll.LoadLibrary(str(native.build(['-DREGENNET_PORTABLE'])))
  assert lib.RegennetFewRowsVectorised() == 0
  lib.RegennetFewRowsSetThreads(2)
  jax.ffi.register_ffi_target('regennet_few_rows_portable_test',
                              jax.ffi.pycapsule(lib.RegennetFewRows),
                              platform='cpu')
  for m, k, n in SHAPES:
    x, w = _operands(m, k, n)
    for dtype in (jnp.float32, jnp.bfloat16):
      call = jax.ffi.ffi_call('regennet_few_rows_portable_test',
                              jax.ShapeDtypeStruct((m, n), jnp.float32))
      y = np.asarray(jax.jit(call)(x, w.astype(dtype)))
      np.testing.assert_allclose(y, _reference(x, w.astype(dtype)), rtol=1e-5, atol=1e-4)
  jax.ffi.register_ffi_target('regennet_one_token_attention_portable_test',
                              jax.ffi.pycapsule(lib.RegennetOneTokenAttention),
                              platform='cpu')
  rng = np.random.default_rng(4)
  query = rng.normal(size=(1, 2, 24)).astype(np.float32)
  keys, values = (rng.normal(size=(2, 1, 2, 9, 24)).astype(np.float32) for _ in range(2))
  for bf16 in (False, True):
    call = jax.ffi.ffi_call('regennet_one_token_attention_portable_test',
                            jax.ShapeDtypeStruct(query.shape, jnp.float32))
    got = call(query, keys, values, np.int32(1), np.int32(6), bf16_operands=bf16)
    np.testing.assert_allclose(np.asarray(got),
                               _attention_reference(query, keys, values, 1, 6, bf16),
                               atol=1e-5)


def test_builds_are_cached_per_flags_and_failures_are_explained(tmp_path, monkeypatch):
  monkeypatch.setenv('REGENNET_NATIVE_CACHE', str(tmp_path))
  first = native.build()
  assert first.parent == tmp_path and first.exists()
  stamp = first.stat().st_mtime_ns
  assert native.build() == first and first.stat().st_mtime_ns == stamp  # not rebuilt
  other = native.build(['-DREGENNET_PORTABLE'])
  assert other != first
  assert sorted(os.listdir(tmp_path)) == sorted([first.name, other.name])  # no scratch left
  with pytest.raises(native.Unavailable, match="no C\\+\\+ compiler 'no-such-c\\+\\+'"):
    native.build(compiler='no-such-c++')
  with pytest.raises(native.Unavailable, match='(?s)could not build.*no-such-flag'):
    native.build(['-fno-such-flag'])


def test_thread_count_setting_is_checked(monkeypatch):
  monkeypatch.setenv('REGENNET_NATIVE_THREADS', '3')
  assert native.default_threads() == 3
  for bad in ('0', 'two'):
    monkeypatch.setenv('REGENNET_NATIVE_THREADS', bad)
    with pytest.raises(native.Unavailable, match=f"REGENNET_NATIVE_THREADS='{bad}'"):
      native.default_threads()


def _custom_calls(fn, *args):
  return jax.jit(fn).lower(*args).as_text().count(native.TARGET)


def test_dense_layers_take_the_native_path_for_few_rows_only():
  # The forms a decoder uses: Dense, DenseGeneral to heads [H, Dh], and from heads back.
  rng = np.random.default_rng(2)
  layers = [nn.Dense(24), nn.DenseGeneral((4, 6)), nn.DenseGeneral(24, axis=(-2, -1)),]
  inputs = [(3, 1, 20), (2, 1, 20), (2, 1, 4, 6)]
  for layer, shape in zip(layers, inputs):
    x = jnp.asarray(rng.normal(size=shape), jnp.float32)
    params = layer.init(jax.random.PRNGKey(0), x)
    for dtype in (None, 'bfloat16'):
      plain = layer.clone(dot_general=matmul.for_layers(dtype))
      fast = layer.clone(dot_general=matmul.for_layers(dtype, native_few_rows=True))
      np.testing.assert_allclose(np.asarray(fast.apply(params, x)),
                                 np.asarray(plain.apply(params, x)),
                                 atol=1e-5)
      assert _custom_calls(lambda x: fast.apply(params, x), x) == 1
      assert _custom_calls(lambda x: plain.apply(params, x), x) == 0
      # More rows than native.MAX_ROWS: XLA's product, which has the arithmetic to parallelise.
      many = jnp.tile(x, (native.MAX_ROWS + 1,) + (1,) * (x.ndim - 1))
      assert _custom_calls(lambda x: fast.apply(params, x), many) == 0


def test_streams_choose_their_kernels():
  assert streaming.choose_kernels('auto') == 'native'
  assert streaming.choose_kernels('native') == 'native'
  assert streaming.choose_kernels('xla') == 'xla'
  two_devices = types.SimpleNamespace(size=2)  # all choose_kernels reads of a mesh
  assert streaming.choose_kernels('auto', two_devices) == 'xla'
  with pytest.raises(errors.ConfigError, match="stream.kernels='native' cannot.*2 devices"):
    streaming.choose_kernels('native', two_devices)
  with pytest.raises(errors.ConfigError, match="stream.kernels must be one of.*'gpu'"):
    streaming.choose_kernels('gpu')


def _attention_reference(query, keys, values, step, frame, bf16):
  """The XLA path of model.StreamingSelfAttention, in float64 after the same roundings."""
  r = (lambda a: np.asarray(jnp.asarray(a, jnp.float32).astype(jnp.bfloat16).astype(jnp.float32))
      ) if bf16 else (lambda a: np.asarray(a, np.float32))
  q = r(np.asarray(query) / np.float32(np.sqrt(query.shape[-1]))).astype(np.float64)
  k = r(keys[step][:, :, :frame + 1]).astype(np.float64)
  v = r(values[step][:, :, :frame + 1]).astype(np.float64)
  scores = np.einsum('bhd,bhtd->bht', q, k)
  weights = np.exp(scores - scores.max(-1, keepdims=True))
  weights = r(weights / weights.sum(-1, keepdims=True)).astype(np.float64)
  return np.einsum('bht,bhtd->bhd', weights, v)


@pytest.mark.parametrize('bf16', [False, True])
def test_one_token_attention_reads_the_steps_slice_up_to_the_frame(bf16):
  rng = np.random.default_rng(3)
  steps, batch, heads, length, dim = 3, 2, 4, 11, 20  # Dh not a multiple of 16 lanes
  query = rng.normal(size=(batch, heads, dim)).astype(np.float32)
  keys, values = (
      rng.normal(size=(steps, batch, heads, length, dim)).astype(np.float32) for _ in range(2))
  attend = jax.jit(native.one_token_attention, static_argnums=5)
  for step, frame in ((0, 0), (1, 5), (2, length - 1)):
    got = np.asarray(attend(query, keys, values, step, frame, bf16))
    np.testing.assert_allclose(got,
                               _attention_reference(query, keys, values, step, frame, bf16),
                               atol=1e-5)
    # Frames after `frame` and other steps' slices are never read.
    spoiled_keys, spoiled_values = keys.copy(), values.copy()
    spoiled_keys[:, :, :, frame + 1:] = np.nan
    spoiled_values[[s for s in range(steps) if s != step]] = np.nan
    np.testing.assert_array_equal(
        np.asarray(attend(query, spoiled_keys, spoiled_values, step, frame, bf16)), got)
  with pytest.raises(Exception, match='step or frame out of range'):
    np.asarray(attend(query, keys, values, 0, length, bf16))
  with pytest.raises(ValueError, match='one_token_attention takes'):
    native.one_token_attention(query, keys[:, :1], values, 0, 0)
