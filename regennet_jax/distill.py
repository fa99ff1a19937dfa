"""One-step students of a trained run (config.distill): sampling in one denoiser pass.

A sampler's cost is its number of denoiser passes (5 for the paper's evaluation, 10 with
classifier-free guidance). A student has the teacher run's model, starts from its weights and
learns to map x_T ~ N(0, I) in ONE pass, told timestep T - 1, to what the teacher's deterministic
chain (DDIM, eta 0, on distill.teacher_respacing, guided at distill.guidance_scale when the
teacher's model is) makes from the same x_T (losses.distillation_loss; train_step.make_distill_step).
Guidance is baked in, so a student samples with respacing 'trailing1', DDIM and no guidance:
`student_sampling` sets those wherever the run is used (training's report, sample, stream, eval).

A student stays causal (it is the same network) and streams like any run.
"""

import os

from regennet_jax import checkpoints
from regennet_jax import errors

# How a student samples, whatever the config file says.
STUDENT_SAMPLING = {
    'sample.respacing': 'trailing1',
    'sample.method': 'ddim',
    'sample.eta': 0.0,
    'sample.guidance_scale': 1.0,
    'eval.respacing': 'trailing1',
    'eval.method': 'ddim',
}


def is_student(config):
  return bool(config.distill.teacher)


def student_sampling(config, overridden=()):
  """`config` with STUDENT_SAMPLING applied if it describes a student; an explicit command-line
  override of one of those fields (`overridden`, as run.py lists them) is an error naming it."""
  if not is_student(config):
    return config
  for name, value in STUDENT_SAMPLING.items():
    section, key = name.split('.')
    if config[section][key] != value and name in overridden:
      raise errors.ConfigError(
          f'--config.{name}={config[section][key]!r}: a one-step student (distill.teacher='
          f'{config.distill.teacher!r}) samples with {name}={value!r}; drop the override.')
    config[section][key] = value
  return config


def adopt_teacher_model(config, workdir, overridden=()):
  """A student is the teacher's network: `config` (of a student trained in `workdir`) gets the
  teacher run's model, diffusion, window length and EMA settings (an explicit contradicting
  override is an error naming it)."""
  teacher = config.distill.teacher
  _check_teacher(teacher)
  if os.path.abspath(teacher) == os.path.abspath(workdir):
    raise errors.ConfigError(f'config.distill.teacher={teacher!r} is the --workdir itself; the '
                             'student needs a run directory of its own (e.g. --workdir='
                             f'{teacher.rstrip("/")}_1step).')
  return checkpoints.adopt_run_config(teacher, config, overridden, {
      **checkpoints.RUN_DEFINING,
      **checkpoints.STATE_SHAPING
  })


def _check_teacher(teacher):
  previous = checkpoints.read_run_config(teacher) if os.path.isdir(teacher) else None
  if previous is None:
    raise errors.MissingFileError(
        f'config.distill.teacher={teacher!r}: not a trained run directory (no '
        f'{checkpoints.CONFIG_FILE}); give the --workdir of a run trained with python run.py.')
  if previous.get('distill', {}).get('teacher'):
    raise errors.ConfigError(
        f'config.distill.teacher={teacher!r} is itself a one-step student (of '
        f"{previous['distill']['teacher']!r}); give a diffusion run as the teacher.")
  if checkpoints.newest_step(teacher) is None:
    raise errors.MissingFileError(
        f'config.distill.teacher={teacher!r}: the run has no checkpoint yet; train it first.')


def teacher_config(config):
  """A copy of `config` with the teacher run's model, diffusion and EMA settings (its config.json):
  what restores the teacher's checkpoint. Raises a clear error if distill.teacher is no run."""
  teacher = config.distill.teacher
  _check_teacher(teacher)
  copy = config.copy_and_resolve_references()
  with copy.unlocked():
    copy.distill.teacher = ''
  return checkpoints.adopt_run_config(teacher, copy)
