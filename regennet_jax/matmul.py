"""Mixed-precision matrix multiplies for the model's Dense layers, forward and backward.

`operands_in('bfloat16')` is a `dot_general` for `nn.Dense(dot_general=...)`: it rounds both
operands to bfloat16, accumulates and returns float32, and so do its two backward products (the
input and the weight gradient). That last part needs a custom VJP: JAX's own transpose rule
multiplies the float32 cotangent by the bfloat16 operand, and XLA:CPU runs such mixed-type products
by converting both sides to float32 -- the backward pass, two thirds of a training step's
arithmetic, then never sees the bfloat16 (AMX / AVX512-BF16) kernels. Rounding the cotangent to
bfloat16 is what mixed-precision training does everywhere (PyTorch autocast, TPU defaults).

The weight gradient contracts the leading axes of both operands as they come
(`[B, T, in] x [B, T, out] -> [in, out]`), a form XLA:CPU gives its bfloat16 kernel. In float32
(`operands_in(None)`, the same custom VJP without rounding) it contracts the tokens flattened into
one axis instead: over one axis XLA:CPU reads the activation transposed in place, over two it
first copies it transposed (about a fifth of the product's time; bfloat16 operands take a slow
kernel in the flattened form, so they keep the copy).
Products with batch dimensions (attention scores and mixing, about 1% of the arithmetic) keep
JAX's own backward: in the bfloat16-cotangent form one of them, [B, Tq, H, D] x [B, Tk, H, D] over
D, lands on an XLA:CPU kernel with no bfloat16 x bfloat16 -> float32 variant.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np


def operands_in(operand_dtype):
  """A `dot_general` multiplying in `operand_dtype`, accumulating in float32; None: float32.

  Gradients come back in the caller's operand dtypes (float32 parameters and activations).
  """
  operand_dtype = jnp.dtype(jnp.float32 if operand_dtype is None else operand_dtype)

  def dot_general(lhs,
                  rhs,
                  dimension_numbers,
                  precision=None,
                  preferred_element_type=None,
                  out_sharding=None):
    del preferred_element_type  # always accumulate (and return) float32
    dimension_numbers = tuple(
        tuple(tuple(int(a) for a in axes) for axes in pair) for pair in dimension_numbers)
    # Batched products (module docstring) and products whose result sharding is given (meshes
    # with explicit axes; the custom backward would not know its gradients' shardings) keep
    # JAX's own backward.
    if dimension_numbers[1][0] or out_sharding is not None:
      return _dot(lhs.astype(operand_dtype), rhs.astype(operand_dtype), dimension_numbers,
                  precision, out_sharding)
    return _mixed_dot(lhs, rhs, dimension_numbers, operand_dtype, precision,
                      (jnp.dtype(lhs.dtype), jnp.dtype(rhs.dtype)))

  return dot_general


def _dot(lhs, rhs, dimension_numbers, precision, out_sharding=None):
  """Float32 result: [batch axes..., lhs free axes..., rhs free axes...] (lax.dot_general's)."""
  return jax.lax.dot_general(lhs,
                             rhs,
                             dimension_numbers,
                             precision=precision,
                             preferred_element_type=jnp.float32,
                             out_sharding=out_sharding)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5))
def _mixed_dot(lhs, rhs, dimension_numbers, operand_dtype, precision, input_dtypes):
  del input_dtypes  # for the backward: the gradients' dtypes
  return _dot(lhs.astype(operand_dtype), rhs.astype(operand_dtype), dimension_numbers, precision)


def _mixed_dot_fwd(lhs, rhs, dimension_numbers, operand_dtype, precision, input_dtypes):
  del input_dtypes
  lhs_low, rhs_low = lhs.astype(operand_dtype), rhs.astype(operand_dtype)
  # Residuals kept in the operand dtype: bfloat16 halves the activation memory of the originals.
  return _dot(lhs_low, rhs_low, dimension_numbers, precision), (lhs_low, rhs_low)


def _free_axes(ndim, *taken):
  return [a for a in range(ndim) if not any(a in axes for axes in taken)]


def _mixed_dot_bwd(dimension_numbers, operand_dtype, precision, input_dtypes, residuals, grad):
  """grad [batch..., lhs free..., rhs free...] -> (d lhs, d rhs) in the operands' own dtypes."""
  lhs_low, rhs_low = residuals
  (lhs_contract, rhs_contract), (lhs_batch, rhs_batch) = dimension_numbers
  grad = grad.astype(operand_dtype)
  lhs_free = _free_axes(lhs_low.ndim, lhs_contract, lhs_batch)
  rhs_free = _free_axes(rhs_low.ndim, rhs_contract, rhs_batch)
  nb, nl = len(lhs_batch), len(lhs_free)
  grad_batch = tuple(range(nb))
  grad_lhs_free = tuple(range(nb, nb + nl))
  grad_rhs_free = tuple(range(nb + nl, grad.ndim))

  # d lhs = grad . rhs over rhs's free axes: [batch..., lhs free..., rhs contracted (ascending)...].
  d_lhs = _dot(grad, rhs_low, ((grad_rhs_free, tuple(rhs_free)), (grad_batch, rhs_batch)),
               precision)
  axes = list(lhs_batch) + lhs_free + [lhs_contract[i] for i in np.argsort(rhs_contract)]
  d_lhs = jnp.transpose(d_lhs, np.argsort(axes))

  # d rhs = lhs . grad over lhs's free axes: [batch..., lhs contracted (ascending)..., rhs free...].
  if operand_dtype == jnp.float32 and not lhs_batch and lhs_free == list(range(nl)):
    # A layer's weight gradient in float32: tokens flattened into one axis (module docstring).
    tokens = int(np.prod(lhs_low.shape[:nl]))
    d_rhs = _dot(lhs_low.reshape(tokens, -1), grad.reshape(tokens, -1), (((0,), (0,)), ((), ())),
                 precision).reshape(lhs_low.shape[nl:] + grad.shape[nl:])
  else:
    d_rhs = _dot(lhs_low, grad, ((tuple(lhs_free), grad_lhs_free), (lhs_batch, grad_batch)),
                 precision)
  axes = list(rhs_batch) + [rhs_contract[i] for i in np.argsort(lhs_contract)] + rhs_free
  d_rhs = jnp.transpose(d_rhs, np.argsort(axes))
  lhs_dtype, rhs_dtype = input_dtypes
  return d_lhs.astype(lhs_dtype), d_rhs.astype(rhs_dtype)


_mixed_dot.defvjp(_mixed_dot_fwd, _mixed_dot_bwd)


def for_layers(operand_dtype, native_few_rows=False):
  """The Dense layers' `dot_general`: operands_in(operand_dtype), and with `native_few_rows`
  (streaming inference) products of at most native.MAX_ROWS rows by a kernel go to
  native.few_rows instead (several threads; a kernel stored in bfloat16 is read as such). No
  gradient: that path is for inference only."""
  dot = operands_in(operand_dtype)
  if not native_few_rows:
    return dot
  from regennet_jax import native  # builds the kernels on first use

  def dot_general(lhs,
                  rhs,
                  dimension_numbers,
                  precision=None,
                  preferred_element_type=None,
                  out_sharding=None):
    (lhs_contract, rhs_contract), (lhs_batch, _) = dimension_numbers
    lhs_contract, rhs_contract = tuple(lhs_contract), tuple(rhs_contract)
    n = len(lhs_contract)
    rows = int(np.prod(lhs.shape[:lhs.ndim - n]))
    # A Dense layer's form: lhs [..., contracted], kernel [contracted, out...] in the same order.
    if (lhs_batch or out_sharding is not None or rows > native.MAX_ROWS or
        lhs_contract != tuple(range(lhs.ndim - n, lhs.ndim)) or rhs_contract != tuple(range(n))):
      return dot(lhs, rhs, dimension_numbers, precision, preferred_element_type, out_sharding)
    depth, out_shape = int(np.prod(rhs.shape[:n])), lhs.shape[:lhs.ndim - n] + rhs.shape[n:]
    kernel, lhs = rhs.reshape(depth, -1), lhs.reshape(rows, depth)
    if operand_dtype is not None:
      # Both operands rounded, as operands_in rounds them: a stream still reproduces the
      # whole-sequence sampler (the kernel widens the bfloat16 kernel exactly, sums in float32).
      kernel = kernel.astype(operand_dtype)
      lhs = lhs.astype(operand_dtype).astype(jnp.float32)
    return native.few_rows(lhs, kernel).reshape(out_shape)

  return dot_general
