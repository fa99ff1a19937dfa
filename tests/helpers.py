"""What several test modules share: a tiny version of the default config (same code paths,
seconds to train) and running run.py as a user does (a subprocess, flags on the command line)."""

import json
import os
import subprocess
import sys

import numpy as np

from configs import synthetic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN = [sys.executable, os.path.join(ROOT, 'run.py')]
ENV = dict(os.environ, JAX_PLATFORMS='cpu')


def forced_devices_env(count):
  """ENV with `count` host CPU devices, keeping the XLA flags the suite sets (conftest.py)."""
  flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={count}"
  return dict(ENV, XLA_FLAGS=flags.strip())


TINY_OVERRIDES = {
    'data.synthetic_train_size': 16,
    'data.synthetic_test_size': 8,
    'data.synthetic_min_frames': 14,
    'data.synthetic_max_frames': 20,
    'data.num_frames': 12,
    'data.num_threads': 1,
    'model.num_layers': 1,
    'model.latent_dim': 32,
    'model.ff_size': 64,
    'train.batch_size': 4,
    'train.num_steps': 6,
    'train.log_every': 1,
    'train.checkpoint_every': 3,
    # Six steps learn nothing under a 100-step warm-up; the schedule has its own test.
    'train.warmup_steps': 0,
    'sample.num_render': 1,
    'sample.batch_size': 4,
    'sample.num_samples': 4,
    # The after-training report (sampling, scoring, rendering) is test_run.py's
    # test_train_then_sample's; elsewhere it would only cost seconds per run.
    'train.report': False,
}


def lag1_correlation(x):
  """Correlation between neighbouring frames of [B, T, ...] samples (frames on axis 1)."""
  x = np.asarray(x)
  return np.corrcoef(x[:, 1:].ravel(), x[:, :-1].ravel())[0, 1]


def tiny_config(**overrides):
  config = synthetic.get_config()
  for key, value in {**TINY_OVERRIDES, **overrides}.items():
    section, name = key.split('.')
    config[section][name] = value
  return config


def cli_overrides(**overrides):
  return [f'--config.{k}={v}' for k, v in {**TINY_OVERRIDES, **overrides}.items()]


def run(args, timeout=600, env=None):
  """run.py with `args` in a subprocess, from the repository root."""
  return subprocess.run(RUN + args,
                        capture_output=True,
                        text=True,
                        timeout=timeout,
                        env=env or ENV,
                        cwd=ROOT)


def last_json(stdout):
  """The JSON result run.py prints last."""
  return json.loads(stdout[stdout.rindex('\n{') + 1:] if '\n{' in stdout else stdout)
