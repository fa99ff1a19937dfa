"""Sampling throughput: reactions/s with DDIM (respaced) + classifier-free guidance.

  python bench/sampling.py                    # configs/ntu120.py, action-conditioned, ddim5 + CFG
  python bench/sampling.py --preset=default   # configs/synthetic.py
  python bench/sampling.py --matmul_dtype=bfloat16   # bfloat16 operands, float32 accumulation
  python bench/sampling.py --chunk_size=64            # the whole batch in one denoiser pass

chunk_size 0 is the sampler's automatic choice (16 on CPU). Reference: the original PyTorch code
samples about 8.5 reactions/s with DDIM-5 + CFG on a 2-core AMD EPYC (9.2 on an Intel Xeon).
"""

import argparse

from common import emit, load_config, roofline, time_fn, xla_flops

import jax
import jax.numpy as jnp
import numpy as np

from regennet_jax import factory
from regennet_jax import sample
from regennet_jax.body import skeleton


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--preset', default='ntu', help="'ntu', 'default' or a configs/ file name")
  parser.add_argument('--respacing', default='ddim5')
  parser.add_argument('--method', default='ddim', choices=['ddim', 'ddpm'])
  parser.add_argument('--guidance_scale', type=float, default=2.5)
  parser.add_argument('--batch_size', type=int, default=64)
  parser.add_argument('--repeats', type=int, default=3)
  parser.add_argument('--matmul_dtype', choices=['float32', 'bfloat16'], default='float32')
  parser.add_argument('--chunk_size', type=int, default=0)
  args = parser.parse_args()
  config = load_config(args.preset)
  # The constrained (action-conditioned) model, so that classifier-free guidance runs.
  config.model.cond_mode, config.model.cond_mask_prob = 'action', 0.1
  config.sample.guidance_scale = args.guidance_scale
  config.sample.matmul_dtype, config.sample.chunk_size = args.matmul_dtype, args.chunk_size
  shape = (args.batch_size, config.data.num_frames, skeleton.MOTION_ROWS, skeleton.MOTION_CHANNELS)
  actor = jnp.asarray(np.random.default_rng(0).normal(0, 0.3, shape).astype(np.float32))
  label = jnp.zeros((args.batch_size,), jnp.int32)
  model = factory.make_model(config, 26, for_sampling=True)
  params = model.init(jax.random.PRNGKey(0), actor[:1], label[:1], actor[:1], label[:1])['params']
  fn = jax.jit(factory.make_sampler(config, 26, args.respacing, args.method))
  key = jax.random.PRNGKey(1)
  seconds = time_fn(fn, params, actor, label, key, repeats=args.repeats)
  per_sec = args.batch_size / seconds
  # The chain loops over steps and chunks, which XLA's count sees once: count one denoiser pass
  # over the whole batch (both guidance halves) and multiply by the number of steps.
  guided = sample.uses_guidance(model, args.guidance_scale)
  one_pass = jax.jit(
      lambda p, x, t: model.apply({'params': p}, x, t, actor, label, guidance_pairs=True)
      if guided else model.apply({'params': p}, x, t, actor, label))
  steps = factory.make_schedule(config, args.respacing).num_steps
  flops = steps * xla_flops(one_pass, params, actor, jnp.zeros((args.batch_size,), jnp.int32))
  m = config.model
  emit({
      'benchmark':
          'sampling',
      'preset':
          args.preset,
      'num_layers':
          m.num_layers,
      'latent_dim':
          m.latent_dim,
      'num_frames':
          config.data.num_frames,
      'batch_size':
          args.batch_size,
      'respacing':
          args.respacing,
      'method':
          args.method,
      'cfg':
          sample.uses_guidance(model, args.guidance_scale),
      'matmul_dtype':
          args.matmul_dtype,
      'chunk_size':
          sample.resolve_chunk_size(args.chunk_size),
      'batch_seconds':
          seconds,
      'reactions_per_sec':
          per_sec,
      **roofline(flops, seconds, args.matmul_dtype), 'speedup_vs_original_pytorch_cpu_8.5_per_s':
          per_sec / 8.5 if args.preset == 'ntu' else None
  })


if __name__ == '__main__':
  main()
