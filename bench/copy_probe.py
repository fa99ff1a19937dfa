"""Can the denoiser copy its input? A diagnostic of the x0 network, not a training recipe.

  python bench/copy_probe.py [--steps=500] [--preset=default]

Trains a fresh network of the preset's size on one task: given a real (clean) reactor as x_t at
t = 0, return it. A network that can pass its input through its layers drives the error towards 0;
one that cannot stays at the error of predicting the data's mean (printed as `mean_baseline`). Three
ways of feeding the same network are compared:

  raw           the reactor as the model takes it (rot6d features vary by ~0.05 around the identity
                rotation's 1s and 0s);
  standardized  each input feature minus the training data's mean, over its spread (floor 0.01),
                and the output scaled back: every feature enters at unit scale;
  residual      raw input, output x_t + network (the network only has to output 0).

Errors are RMS over all features on test windows (from frame 0), in the actor's frame when the
preset's model works there. README, "Training recipe", cites the numbers.
"""

import argparse

from common import emit, load_config, windows_in_model_frame

import jax
import jax.numpy as jnp
import optax

from regennet_jax import factory
from regennet_jax.data import sources

FEEDS = ('raw', 'standardized', 'residual')


def probe(config, feed, train, test, steps, batch_size, seed):
  """RMS error of the copy on the test windows every steps // 5 steps."""
  model = factory.make_model(config, int(train[2].max()) + 1)
  actor, reactor, label = train
  mean, spread = reactor.mean((0, 1)), jnp.maximum(reactor.std((0, 1)), 0.01)
  t0 = lambda x: jnp.zeros((len(x),), jnp.int32)

  def copy(params, x, a, l):
    if feed == 'standardized':
      return model.apply({'params': params}, (x - mean) / spread, t0(x), a, l) * spread + mean
    out = model.apply({'params': params}, x, t0(x), a, l)
    return x + out if feed == 'residual' else out

  def error(params, x, a, l):
    return jnp.mean(jnp.square(copy(params, x, a, l) - x))

  params = model.init(jax.random.PRNGKey(seed), reactor[:2], t0(reactor[:2]), actor[:2],
                      label[:2])['params']
  tx = optax.adam(config.train.learning_rate)
  opt_state = tx.init(params)

  @jax.jit
  def step(params, opt_state, key):
    rows = jax.random.randint(key, (batch_size,), 0, len(reactor))
    grads = jax.grad(error)(params, reactor[rows], actor[rows], label[rows])
    updates, opt_state = tx.update(grads, opt_state)
    return optax.apply_updates(params, updates), opt_state

  test_rms = jax.jit(lambda p: jnp.sqrt(error(p, test[1], test[0], test[2])))
  curve = []
  for i in range(steps):
    params, opt_state = step(params, opt_state, jax.random.PRNGKey(seed * 100_003 + i))
    if (i + 1) % max(1, steps // 5) == 0:
      curve.append({'step': i + 1, 'rms': float(test_rms(params))})
  return curve


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--preset', default='default', help="'default' or a configs/ file name")
  parser.add_argument('--steps', type=int, default=500)
  parser.add_argument('--seed', type=int, default=0)
  args = parser.parse_args()
  config = load_config(args.preset)
  config.model.center = 'zero'  # the probe feeds and reads the network itself (--feed)
  train_source, test_source, _ = sources.load_splits(config.data)
  train = windows_in_model_frame(config, train_source, 512)
  test = windows_in_model_frame(config, test_source, 64)
  baseline = jnp.sqrt(jnp.mean(jnp.square(test[1] - train[1].mean((0, 1)))))
  emit({
      'benchmark': 'copy_probe',
      'preset': args.preset,
      'steps': args.steps,
      'mean_baseline_rms': float(baseline),
      'rms_by_feed': {
          feed: probe(config, feed, train, test, args.steps, config.train.batch_size, args.seed)
          for feed in FEEDS
      },
  })


if __name__ == '__main__':
  main()
