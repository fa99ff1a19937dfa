"""How the training step scales: with batch size, with sequence length, and over devices.

  python bench/scaling.py                       # the default run's model (configs/synthetic.py)
  python bench/scaling.py --preset=ntu          # paper size (configs/ntu120.py; slow on a CPU)

Device scaling runs in subprocesses with XLA_FLAGS=--xla_force_host_platform_device_count=N; on a
2-core CPU the forced devices share the same cores, so this shows overhead, not speed-up.
"""

import argparse
import json
import os
import subprocess
import sys

from common import ROOT, emit, load_config, time_fn

import jax

from regennet_jax import factory
from regennet_jax import sharding
from regennet_jax import train_step


def step_seconds(preset, batch, frames, devices=None):
  config = load_config(preset)
  config.data.num_frames, config.train.batch_size = frames, batch
  setup = factory.make_training(config, 8, devices)
  batch_arrays = sharding.shard_batch(factory.dummy_batch(config, batch), setup.mesh)
  fn = jax.jit(
      train_step.make_train_step(config, setup.model, setup.optimizer,
                                 factory.make_schedule(config), factory.make_rest_joints(config),
                                 factory.make_loss_weights(config)))
  key = jax.random.PRNGKey(1)
  return time_fn(lambda s: fn(s, batch_arrays, key)[1]['loss'], setup.state, repeats=3)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--preset', default='default', help="'default', 'ntu' or a configs/ name")
  parser.add_argument('--child_devices', type=int, help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.child_devices:
    print(json.dumps({'seconds': step_seconds(args.preset, 32, 40)}))
    return
  by_batch = {b: step_seconds(args.preset, b, 40) for b in (8, 16, 32, 64)}
  by_frames = {t: step_seconds(args.preset, 32, t) for t in (20, 40, 80, 150)}
  by_devices = {}
  for n in (1, 2, 4):
    env = dict(os.environ, XLA_FLAGS=f'--xla_force_host_platform_device_count={n}')
    out = subprocess.run(
        [sys.executable, __file__, f'--preset={args.preset}', f'--child_devices={n}'],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True).stdout
    by_devices[n] = json.loads(out.strip().splitlines()[-1])['seconds']
  emit({
      'benchmark': 'scaling',
      'preset': args.preset,
      'step_seconds_by_batch_size_at_40_frames': by_batch,
      'step_seconds_by_frames_at_batch_32': by_frames,
      'step_seconds_by_forced_cpu_devices_batch_32': by_devices
  })


if __name__ == '__main__':
  main()
