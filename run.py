"""regennet_jax entry point.

  python run.py                                    # train on the embedded synthetic data (CPU minutes)
  python run.py --config=configs/chi3d.py          # the paper's Chi3D-AS settings
  python run.py --config.train.num_steps=100       # override any config field
  python run.py --mode=sample --workdir=runs/x     # sample reactions from a trained run

Everything a run produces lives in --workdir (default runs/<config name>): config.json,
checkpoints/, metrics.jsonl, tensorboard/, samples/, report.md.
"""

import json
import os
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    'config', os.path.join(os.path.dirname(os.path.abspath(__file__)), 'configs', 'synthetic.py'),
    'Config file (ml_collections); fields can be overridden as --config.a.b=value.')
_WORKDIR = flags.DEFINE_string('workdir', None, 'Run directory (default: runs/<config name>).')
_DISTRIBUTED = flags.DEFINE_bool(
    'distributed', False,
    'Multi-host run: call jax.distributed.initialize() (auto-detects TPU pods, '
    'SLURM, ...; or give --coordinator_address/--num_processes/--process_id).')
_COORDINATOR = flags.DEFINE_string('coordinator_address', None, 'host:port of process 0.')
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', None, 'Number of processes (hosts).')
_PROCESS_ID = flags.DEFINE_integer('process_id', None, 'This process index, 0..num_processes-1.')
_MODE = flags.DEFINE_enum(
    'mode', 'train', ['train', 'sample', 'stream', 'train_recognizer', 'eval'],
    'train: train (resuming if the workdir has checkpoints), then sample and report. '
    'sample: sample test reactions from the latest checkpoint. '
    'stream: generate test reactions frame by frame and report latency. '
    'train_recognizer: train the ST-GCN evaluator on real pairs. '
    'eval: the paper\'s metrics (needs a trained model and recognizer).')


def _workdir():
  if _WORKDIR.value:
    return _WORKDIR.value
  name = os.path.splitext(os.path.basename(flags.FLAGS['config'].config_filename))[0]
  return os.path.join('runs', name)


def run(mode, config, workdir):
  """Runs one mode; returns its JSON-able result."""
  import jax  # imported here so that --help is instant
  from regennet_jax import modes
  from regennet_jax import train
  from regennet_jax.data import sources
  if _DISTRIBUTED.value or _COORDINATOR.value:
    jax.distributed.initialize(coordinator_address=_COORDINATOR.value,
                               num_processes=_NUM_PROCESSES.value,
                               process_id=_PROCESS_ID.value)
  splits = sources.load_splits(config.data)
  if mode == 'train':
    state, summary = train.train(config, workdir, splits)
    return modes.after_training(config, workdir, state, summary, splits)
  if mode == 'sample':
    return modes.sample_from_checkpoint(config, workdir, splits)
  if mode == 'stream':
    return modes.stream_from_checkpoint(config, workdir, splits)
  if mode == 'train_recognizer':
    return modes.train_recognizer(config, workdir, splits)
  return modes.evaluate(config, workdir, splits)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  logging.set_verbosity(logging.WARNING)  # keep library INFO chatter (orbax, jax) off the console
  from regennet_jax import errors
  try:
    result = run(_MODE.value, _CONFIG.value, _workdir())
  except errors.UserError as e:
    if os.environ.get('REGENNET_DEBUG'):
      raise
    print(f'error: {e}', file=sys.stderr)
    sys.exit(1)
  import jax
  if jax.process_index() == 0:
    print(json.dumps(result, indent=2))


if __name__ == '__main__':
  app.run(main)
