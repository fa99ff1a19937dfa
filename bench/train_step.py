"""Training-step speed, its FLOP rate against the machine's matmul rate, and the share spent in
SMPL-X forward kinematics.

  python bench/train_step.py                          # configs/ntu120.py: B=64, T=60, 8 x 512
  python bench/train_step.py --preset=default         # configs/synthetic.py (the default run)
  python bench/train_step.py --matmul_dtype=bfloat16

Reference: the original PyTorch code needs about 23 s per step at the NTU config on a 2-core CPU,
87% of it building SMPL-X meshes (measured with the released code; docs/architecture.md).
"""

import argparse
import resource

from common import emit, load_config, roofline, time_fn, xla_flops

import jax
import jax.numpy as jnp
import numpy as np

from regennet_jax import factory
from regennet_jax import sharding
from regennet_jax import train_step
from regennet_jax.body import kinematics
from regennet_jax.body import rotations


def random_batch(config, batch_size, seed=0):
  """A batch of random poses with the pipeline's structure (rot6d of random axis-angles)."""
  batch = factory.dummy_batch(config, batch_size)
  aa = np.random.default_rng(seed).normal(0, 0.4, batch['actor'].shape[:2] + (55, 3))
  motion = np.zeros(batch['actor'].shape, np.float32)
  motion[:, :, :55] = np.asarray(rotations.axis_angle_to_rot6d(jnp.asarray(aa, jnp.float32)))
  return dict(batch, actor=motion, reactor=motion)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--preset', default='ntu', help="'ntu', 'default' or a configs/ file name")
  parser.add_argument('--repeats', type=int, default=5)
  parser.add_argument('--matmul_dtype', default='float32', choices=['float32', 'bfloat16'])
  args = parser.parse_args()
  config = load_config(args.preset)
  config.model.matmul_dtype = args.matmul_dtype
  setup = factory.make_training(config, 26)
  batch = sharding.shard_batch(random_batch(config, config.train.batch_size), setup.mesh)
  key = jax.random.PRNGKey(1)
  # The same step without donation: the same state is fed again and again.
  step = jax.jit(
      train_step.make_train_step(config, setup.model, setup.optimizer,
                                 factory.make_schedule(config), factory.make_rest_joints(config),
                                 factory.make_loss_weights(config)))
  jax.block_until_ready(step(setup.state, batch, key))  # compiled and run once before counting
  faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  seconds = time_fn(lambda s: step(s, batch, key)[1]['loss'],
                    setup.state,
                    repeats=args.repeats,
                    warmup=0)  # the call above warmed it up
  # At NTU size about 450,000 a step: XLA:CPU's buffers come from malloc, and glibc returns freed
  # ones to the kernel (README, speed, fourth sitting).
  faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / args.repeats
  flops = xla_flops(step, setup.state, batch, key)
  m = config.model

  # FK as a step uses it (losses.loss_terms, model.actor_positions): actor and GT forward only
  # (data, no gradient; the actor once more inside the network when it takes joint positions),
  # the prediction forward and backward.
  rest = factory.make_rest_joints(config)
  data = jnp.stack([batch['actor']] * (3 if m.actor_positions else 2))
  fk_data = jax.jit(lambda x: kinematics.motion_to_joints(x, rest))
  fk_pred = jax.jit(jax.value_and_grad(lambda x: jnp.sum(kinematics.motion_to_joints(x, rest)**2)))
  fk_time = (time_fn(fk_data, data, repeats=args.repeats) +
             time_fn(fk_pred, batch['actor'], repeats=args.repeats))
  emit({
      'benchmark': 'train_step',
      'preset': args.preset,
      'batch_size': config.train.batch_size,
      'num_frames': config.data.num_frames,
      'num_layers': m.num_layers,
      'latent_dim': m.latent_dim,
      'ff_size': m.ff_size,
      'matmul_dtype': args.matmul_dtype,
      'step_seconds': seconds,
      'steps_per_sec': 1 / seconds,
      'samples_per_sec': config.train.batch_size / seconds,
      **roofline(flops, seconds, args.matmul_dtype), 'fk_seconds': fk_time,
      'fk_share_of_step': fk_time / seconds,
      'page_faults_per_step': faults,
      'speedup_vs_original_pytorch_cpu_23s': 23.0 / seconds if args.preset == 'ntu' else None,
  })


if __name__ == '__main__':
  main()
