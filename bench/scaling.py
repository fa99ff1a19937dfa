"""How the training step scales: with batch size, with sequence length, and over devices.

  python bench/scaling.py                       # default-size model (fast)
  python bench/scaling.py --preset=ntu          # paper size (slow on a CPU)

Device scaling runs in subprocesses with XLA_FLAGS=--xla_force_host_platform_device_count=N; on a
2-core CPU the forced devices share the same cores, so this shows overhead, not speed-up.
"""

import argparse
import json
import os
import subprocess
import sys

from common import ROOT, emit, time_fn

import jax

from configs import synthetic
from regennet_jax import train as train_lib

PRESETS = {'default': (2, 128, 256), 'ntu': (8, 512, 1024)}


def step_seconds(preset, batch, frames, devices=None):
  layers, width, ff = PRESETS[preset]
  config = synthetic.get_config()
  config.model.num_layers, config.model.latent_dim, config.model.ff_size = layers, width, ff
  config.data.num_frames, config.train.batch_size = frames, batch
  model = train_lib.build_model(config, 8)
  tx = train_lib.build_optimizer(config)
  mesh = train_lib.make_mesh(1, devices)
  state, shardings = train_lib.init_state(config, model, tx, mesh, jax.random.PRNGKey(0))
  batch_arrays = train_lib.shard_batch(train_lib.example_batch(config, batch), mesh)
  fn = jax.jit(train_lib.make_train_step(config, model, tx, train_lib.build_schedule(config),
                                         train_lib.build_rest_joints(config),
                                         train_lib.build_loss_weights(config)))
  key = jax.random.PRNGKey(1)
  return time_fn(lambda s: fn(s, batch_arrays, key)[1]['loss'], state, repeats=3)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--preset', choices=sorted(PRESETS), default='default')
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
    out = subprocess.run([sys.executable, __file__, f'--preset={args.preset}',
                          f'--child_devices={n}'], env=env, capture_output=True, text=True,
                         cwd=ROOT, check=True).stdout
    by_devices[n] = json.loads(out.strip().splitlines()[-1])['seconds']
  emit({'benchmark': 'scaling', 'preset': args.preset,
        'step_seconds_by_batch_size_at_40_frames': by_batch,
        'step_seconds_by_frames_at_batch_32': by_frames,
        'step_seconds_by_forced_cpu_devices_batch_32': by_devices})


if __name__ == '__main__':
  main()
