"""regennet_jax entry point.

  python run.py                                    # train on the embedded synthetic data (CPU minutes)
  python run.py --config=configs/chi3d.py          # the paper's Chi3D-AS settings
  python run.py --config.train.num_steps=100       # override any config field
  python run.py --mode=sample --workdir=runs/x     # sample reactions from a trained run
  python run.py --config=configs/distill.py:runs/x  # a one-pass student of it, in runs/x_1step

Everything a run produces lives in --workdir (default runs/<config name>; a student's beside its
teacher): config.json, checkpoints/, metrics.jsonl, tensorboard/, samples/, report.md.
"""

import importlib.util
import json
import os
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from regennet_jax import allocator

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'configs', 'synthetic.py')


def _config_file(argv):
  """(config file path, its ':argument' or None) from the command line."""
  for i, arg in enumerate(argv):
    value = arg.split('=', 1)[1] if arg.startswith('--config=') else (
        argv[i + 1] if arg == '--config' and i + 1 < len(argv) else None)
    if value is not None:
      path, _, argument = value.partition(':')
      return path, argument or None
  return DEFAULT_CONFIG, None


def _overrides(argv):
  """[(field, value text)] of the --config.field=value flags on the command line."""
  out = []
  for i, arg in enumerate(argv):
    if arg.startswith('--config.'):
      name, _, value = arg[len('--config.'):].partition('=')
      if not _ and i + 1 < len(argv):
        value = argv[i + 1]
      out.append((name, value))
  return out


def overridden_fields(argv):
  """The config fields set on the command line ('train.num_steps', ...)."""
  return [name for name, _ in _overrides(argv)]


def _type_problem(default, text):
  """What `text` should look like for a field whose default is `default` (None if it is fine)."""
  if isinstance(default, bool):
    return None if text.lower() in ('true', 'false', '1', '0') else 'bool (True or False)'
  if isinstance(default, int):
    try:
      int(text)
    except ValueError:
      return 'int (a whole number)'
  elif isinstance(default, float):
    try:
      float(text)
    except ValueError:
      return 'float (a number)'
  return None


def _explain_flag_error(argv, error=None):
  """One line for a command line that does not parse (a missing config file, an unknown field),
  or None if it is fine."""
  path, argument = _config_file(argv)
  if not os.path.exists(path):
    return f'--config={path}: no such config file (see configs/ for the ones there are).'
  try:
    spec = importlib.util.spec_from_file_location('config_module', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config() if argument is None else module.get_config(argument)
  except Exception as e:  # a broken config file or argument: say where
    return f'--config={path}: the config file does not load ({type(e).__name__}: {e}).'
  for name, value in _overrides(argv):
    node, parts = config, name.split('.')
    for depth, part in enumerate(parts):
      if not hasattr(node, 'keys') or part not in node:
        section = '.'.join(parts[:depth]) or 'the config'
        known = ', '.join(sorted(node.keys())) if hasattr(node, 'keys') else ''
        return f'--config.{name}: {section} has no field {part!r} (it has: {known}).'
      node = node[part]
    problem = _type_problem(node, value)
    if problem:
      return f'--config.{name}={value}: expected {problem}.'
  return None if error is None else f'the command line does not parse: {error}'


def _check_command_line(argv):
  """ml_collections applies --config.* overrides while the flag is defined: explain a bad config
  file or field in one line before that raises a traceback."""
  problem = _explain_flag_error(argv)
  if problem and not os.environ.get('REGENNET_DEBUG'):
    print(f'error: {problem}', file=sys.stderr)
    sys.exit(1)


if __name__ == '__main__':
  _check_command_line(sys.argv)

_CONFIG = config_flags.DEFINE_config_file(
    'config', DEFAULT_CONFIG,
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
  teacher = _CONFIG.value.distill.teacher
  if teacher:  # a one-pass student lives beside its teacher
    return teacher.rstrip('/') + '_1step'
  name = os.path.splitext(os.path.basename(flags.FLAGS['config'].config_filename))[0]
  return os.path.join('runs', name)


def _parse_flags(argv):
  try:
    return flags.FLAGS(argv)
  except Exception as e:  # absl and ml_collections raise several types
    if os.environ.get('REGENNET_DEBUG'):
      raise
    print(f'error: {_explain_flag_error(argv, e)}', file=sys.stderr)
    sys.exit(1)


def run(mode, config, workdir, overridden=()):
  """Runs one mode; returns its JSON-able result. Checks every setting before writing anything."""
  import jax  # imported here so that --help is instant
  from regennet_jax import checkpoints
  from regennet_jax import config_check
  from regennet_jax import distill
  from regennet_jax import modes
  from regennet_jax import train
  from regennet_jax.data import sources
  if mode != 'train':  # the model the run was trained with, not the config file's
    checkpoints.adopt_run_config(workdir, config, overridden)
  elif distill.is_student(config):  # a one-step student is its teacher's network
    distill.adopt_teacher_model(config, workdir, overridden)
  distill.student_sampling(config, overridden)
  config_check.validate(config)
  checkpoints.check_writable(workdir)  # now, not after the long work
  if _DISTRIBUTED.value or _COORDINATOR.value:
    jax.distributed.initialize(coordinator_address=_COORDINATOR.value,
                               num_processes=_NUM_PROCESSES.value,
                               process_id=_PROCESS_ID.value)
  splits = sources.load_splits(config.data)
  config_check.validate_against_data(config, splits)
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
    result = run(_MODE.value, _CONFIG.value, _workdir(), overridden_fields(sys.argv))
  except errors.UserError as e:
    if os.environ.get('REGENNET_DEBUG'):
      raise
    print(f'error: {e}', file=sys.stderr)
    sys.exit(1)
  import jax
  if jax.process_index() == 0:
    print(json.dumps(result, indent=2))


if __name__ == '__main__':
  allocator.preload()  # tcmalloc: a CPU training step a tenth faster (regennet_jax/allocator.py)
  app.run(main, flags_parser=_parse_flags)
