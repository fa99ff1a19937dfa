"""A tiny version of the default config: same code paths, seconds to train."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

from configs import synthetic  # noqa: E402

TINY_OVERRIDES = {
    'data.synthetic_train_size': 16, 'data.synthetic_test_size': 8,
    'data.synthetic_min_frames': 14, 'data.synthetic_max_frames': 20, 'data.num_frames': 12,
    'data.num_threads': 1,
    'model.num_layers': 1, 'model.latent_dim': 32, 'model.ff_size': 64,
    'train.batch_size': 4, 'train.num_steps': 6, 'train.log_every': 1,
    'train.checkpoint_every': 3, 'sample.num_render': 1, 'sample.batch_size': 4,
    'sample.num_samples': 4,
}


def tiny_config(**overrides):
  config = synthetic.get_config()
  for key, value in {**TINY_OVERRIDES, **overrides}.items():
    section, name = key.split('.')
    config[section][name] = value
  return config


def cli_overrides(**overrides):
  return [f'--config.{k}={v}' for k, v in {**TINY_OVERRIDES, **overrides}.items()]
