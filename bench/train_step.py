"""Training-step speed and the share of it spent in SMPL-X forward kinematics.

  python bench/train_step.py                 # the paper's NTU config: B=64, T=60, 8x512, inter. losses
  python bench/train_step.py --preset=default

Reference (REGENNET_SPEC.md): the original PyTorch code needs ~23 s per step at the NTU config on a
2-core CPU, 87% of it building SMPL-X meshes.
"""

import argparse

from common import emit, time_fn

import jax
import jax.numpy as jnp
import numpy as np

from configs import synthetic
from regennet_jax import train as train_lib
from regennet_jax.body import kinematics
from regennet_jax.body import rotations

PRESETS = {
    'ntu': dict(batch_size=64, num_frames=60, num_layers=8, latent_dim=512, ff_size=1024),
    'default': dict(batch_size=32, num_frames=40, num_layers=2, latent_dim=128, ff_size=256),
}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--preset', choices=sorted(PRESETS), default='ntu')
  parser.add_argument('--repeats', type=int, default=5)
  parser.add_argument('--matmul_dtype', default='float32', choices=['float32', 'bfloat16'])
  args = parser.parse_args()
  p = PRESETS[args.preset]
  config = synthetic.get_config()
  config.model.num_layers, config.model.latent_dim, config.model.ff_size = (
      p['num_layers'], p['latent_dim'], p['ff_size'])
  config.data.num_frames = p['num_frames']
  config.train.batch_size = p['batch_size']
  config.model.matmul_dtype = args.matmul_dtype

  model = train_lib.build_model(config, 26)
  tx = train_lib.build_optimizer(config)
  mesh = train_lib.make_mesh(1)
  state, shardings = train_lib.init_state(config, model, tx, mesh, jax.random.PRNGKey(0))
  rng = np.random.default_rng(0)
  batch = train_lib.example_batch(config, p['batch_size'])
  aa = rng.normal(0, 0.4, (p['batch_size'], p['num_frames'], 55, 3)).astype(np.float32)
  motion = np.zeros(batch['actor'].shape, np.float32)
  motion[:, :, :55] = np.asarray(rotations.axis_angle_to_rot6d(jnp.asarray(aa)))
  batch = dict(batch, actor=motion, reactor=motion)
  batch = train_lib.shard_batch(batch, mesh)
  step = jax.jit(train_lib.make_train_step(config, model, tx, train_lib.build_schedule(config),
                                           train_lib.build_rest_joints(config),
                                           train_lib.build_loss_weights(config)))
  key = jax.random.PRNGKey(1)
  step_time = time_fn(lambda s: step(s, batch, key)[1]['loss'], state, repeats=args.repeats)

  # FK as the losses use it: actor, GT and prediction stacked, forward + backward.
  rest = train_lib.build_rest_joints(config)
  stacked = jnp.stack([batch['actor']] * 3)
  fk = jax.jit(jax.value_and_grad(lambda m: jnp.sum(kinematics.motion_to_joints(m, rest) ** 2)))
  fk_time = time_fn(fk, stacked, repeats=args.repeats)
  emit({
      'benchmark': 'train_step', 'preset': args.preset, **p, 'matmul_dtype': args.matmul_dtype,
      'step_seconds': step_time, 'steps_per_sec': 1 / step_time,
      'samples_per_sec': p['batch_size'] / step_time,
      'fk_fwd_bwd_seconds_3x_batch': fk_time, 'fk_share_of_step': fk_time / step_time,
      'speedup_vs_original_pytorch_cpu_23s': 23.0 / step_time if args.preset == 'ntu' else None,
  })


if __name__ == '__main__':
  main()
