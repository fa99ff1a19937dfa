"""Streaming latency: milliseconds per reactor frame (p50/p99) for several denoising-step counts.

  python bench/streaming.py [--preset=ntu|default] [--steps=2,5,10,100]

Paper Table 7 (GPU): 0.33 / 0.76 / 1.58 / 15.17 ms per frame for 2 / 5 / 10 / 100 steps.
"""

import argparse

from common import emit, load_config

import jax
import jax.numpy as jnp
import numpy as np

from regennet_jax import factory
from regennet_jax import streaming
from regennet_jax.body import skeleton


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--preset', default='ntu', help="'ntu', 'default' or a configs/ file name")
  parser.add_argument('--steps', default='2,5,10')
  parser.add_argument('--frames', type=int, default=60)
  args = parser.parse_args()
  config = load_config(args.preset)
  model = factory.make_model(config, 26, for_sampling=True)
  layout = (skeleton.MOTION_ROWS, skeleton.MOTION_CHANNELS)
  x = jnp.zeros((1, args.frames) + layout)
  params = model.init(jax.random.PRNGKey(0), x, jnp.zeros((1,), jnp.int32), x)['params']
  actor = np.random.default_rng(0).normal(0, 0.3, (args.frames, 1) + layout).astype(np.float32)
  results = {}
  for steps in [int(s) for s in args.steps.split(',')]:
    schedule = factory.make_schedule(config, f'ddim{steps}')
    stream = streaming.ReactionStream(model,
                                      params,
                                      schedule,
                                      jax.random.PRNGKey(1),
                                      max_frames=args.frames)
    for f in range(args.frames):
      stream.push(actor[f])
    results[f'{steps}_steps'] = stream.latency_report()
  m = config.model
  emit({
      'benchmark': 'streaming',
      'preset': args.preset,
      'num_layers': m.num_layers,
      'latent_dim': m.latent_dim,
      'frames': args.frames,
      'latency': results
  })


if __name__ == '__main__':
  main()
