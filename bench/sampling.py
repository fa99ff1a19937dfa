"""Sampling throughput: reactions/s with DDIM (respaced) + classifier-free guidance.

  python bench/sampling.py                    # paper NTU size: 8x512, 60 frames, batch 64, ddim5, CFG
  python bench/sampling.py --preset=default
  python bench/sampling.py --matmul_dtype=bfloat16   # bfloat16 operands, float32 accumulation
  python bench/sampling.py --chunk_size=64            # the whole batch in one denoiser pass

chunk_size 0 is the sampler's automatic choice (16 on CPU).

Reference (REGENNET_SPEC.md): the original PyTorch code samples ~8.5 reactions/s with DDIM-5 + CFG
on a 2-core CPU.
"""

import argparse

from common import emit, time_fn

import jax
import jax.numpy as jnp
import numpy as np

from regennet_jax import diffusion
from regennet_jax import sample
from regennet_jax.model import Denoiser

PRESETS = {
    'ntu': dict(num_layers=8, latent_dim=512, ff_size=1024, num_frames=60, batch_size=64),
    'default': dict(num_layers=2, latent_dim=128, ff_size=256, num_frames=40, batch_size=64),
}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--preset', choices=sorted(PRESETS), default='ntu')
  parser.add_argument('--respacing', default='ddim5')
  parser.add_argument('--guidance_scale', type=float, default=2.5)
  parser.add_argument('--repeats', type=int, default=3)
  parser.add_argument('--matmul_dtype', choices=['float32', 'bfloat16'], default='float32')
  parser.add_argument('--chunk_size', type=int, default=0)
  args = parser.parse_args()
  p = PRESETS[args.preset]
  shape = (p['batch_size'], p['num_frames'], 56, 6)
  actor = jnp.asarray(np.random.default_rng(0).normal(0, 0.3, shape).astype(np.float32))
  label = jnp.zeros((p['batch_size'],), jnp.int32)
  schedule = diffusion.make_schedule('cosine', 1000, args.respacing)
  dtype = args.matmul_dtype
  model = Denoiser(num_layers=p['num_layers'], latent_dim=p['latent_dim'], ff_size=p['ff_size'],
                   cond_mode='action', num_actions=26, cond_mask_prob=0.1,
                   matmul_dtype=None if dtype == 'float32' else dtype)
  params = model.init(jax.random.PRNGKey(0), actor[:1], label[:1], actor[:1], label[:1])['params']
  fn = jax.jit(sample.make_sampler(model, schedule, 'ddim', guidance_scale=args.guidance_scale,
                                   chunk_size=args.chunk_size))
  seconds = time_fn(fn, params, actor, label, jax.random.PRNGKey(1), repeats=args.repeats)
  per_sec = p['batch_size'] / seconds
  emit({'benchmark': 'sampling', 'preset': args.preset, **p, 'respacing': args.respacing,
        'cfg': sample.uses_guidance(model, args.guidance_scale), 'matmul_dtype': dtype,
        'chunk_size': sample.resolve_chunk_size(args.chunk_size), 'batch_seconds': seconds,
        'reactions_per_sec': per_sec,
        'speedup_vs_original_pytorch_cpu_8.5_per_s': per_sec / 8.5 if args.preset == 'ntu' else None})


if __name__ == '__main__':
  main()
