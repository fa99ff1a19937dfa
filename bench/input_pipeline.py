"""Input pipeline throughput (windows/s) from a built TFDS dataset, against what a paper-size
training step consumes.

  python bench/input_pipeline.py [--batches=100 --threads=2]

Builds the synthetic dataset as a TFDS dataset (array_record) in a temporary data dir, reads it
through the TFDS data source into the grain pipeline (record read + decode, crop, rot6d conversion,
batching) and times batches of the NTU config's shape (B=64, T=60). Then times the NTU config's
training step on the same machine; `headroom` is how many times faster the pipeline delivers
windows than training consumes them.
"""

import argparse
import tempfile
import time

from common import emit, load_config, time_fn

import jax
import ml_collections

from regennet_jax import factory
from regennet_jax import sharding
from regennet_jax import train_step
from regennet_jax.data import builders
from regennet_jax.data import pipeline
from regennet_jax.data import sources


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--batches', type=int, default=100)
  parser.add_argument('--threads', type=int, default=2)
  parser.add_argument('--step_repeats', type=int, default=3)
  args = parser.parse_args()
  config = load_config('ntu')
  n, batch_size = config.data.num_frames, config.train.batch_size
  with tempfile.TemporaryDirectory() as tmp:
    data = ml_collections.ConfigDict({
        'name': 'synthetic',
        'dir': tmp,
        'path': '',
        'seed': 0,
        'synthetic_train_size': 512,
        'synthetic_test_size': 8,
        'synthetic_min_frames': n,
        'synthetic_max_frames': 2 * n
    })
    start = time.perf_counter()
    builders.synthetic_dataset_dir(data)
    build_seconds = time.perf_counter() - start
    train, _, _ = sources.load_splits(data)
    it = iter(
        pipeline.make_dataset(train,
                              batch_size,
                              pipeline.Windowing(n),
                              num_threads=args.threads,
                              prefetch=8))
    next(it)
    start = time.perf_counter()
    for _ in range(args.batches):
      next(it)
    seconds = time.perf_counter() - start
  delivered = args.batches * batch_size / seconds

  setup = factory.make_training(config, 26)
  batch = sharding.shard_batch(factory.dummy_batch(config, batch_size), setup.mesh)
  step = jax.jit(
      train_step.make_train_step(config, setup.model, setup.optimizer,
                                 factory.make_schedule(config), factory.make_rest_joints(config),
                                 factory.make_loss_weights(config)))
  key = jax.random.PRNGKey(0)
  step_seconds = time_fn(lambda s: step(s, batch, key)[1]['loss'],
                         setup.state,
                         repeats=args.step_repeats)
  consumed = batch_size / step_seconds
  emit({
      'benchmark': 'input_pipeline',
      'source': 'TFDS array_record (tfds data source) -> grain',
      'num_frames': n,
      'batch_size': batch_size,
      'threads': args.threads,
      'build_seconds_640_sequences': build_seconds,
      'windows_per_sec': delivered,
      'batches_per_sec': args.batches / seconds,
      'train_step_seconds_ntu_config': step_seconds,
      'windows_per_sec_training_consumes': consumed,
      'headroom': delivered / consumed,
  })


if __name__ == '__main__':
  main()
