"""A one-step student of a trained run (regennet_jax/distill.py): the teacher run's own settings
(data, model, diffusion, evaluation; read from its config.json) plus the distillation recipe.

python run.py --config=configs/distill.py:runs/synthetic    # the student goes to runs/synthetic_1step
python run.py --config=configs/distill.py:runs/synthetic --config.train.num_steps=2000  # overrides

The recipe (README, "Sampling at equal quality"): 1,000 steps at a constant 3e-4 after the
teacher's warm-up, and the world-joint velocity term at 10 so that the student's one pass does not
shake more than the teacher's chain.
"""

import json
import os

from configs import base


def get_config(teacher=''):
  if not teacher:
    raise ValueError('give the teacher run directory after a colon: '
                     '--config=configs/distill.py:runs/synthetic')
  path = os.path.join(teacher, 'config.json')
  if not os.path.exists(path):
    raise ValueError(f'{path} does not exist: the teacher must be a trained run directory')
  with open(path) as f:  # read here, not through regennet_jax: a config file stays import-light
    saved = json.load(f)
  c = base.get_config()
  for section, values in saved.items():
    if section in c and hasattr(c[section], 'keys'):
      for key, value in values.items():
        if key in c[section]:  # fields of older or newer versions are left out
          c[section][key] = tuple(value) if isinstance(c[section][key], tuple) else value
    elif section in c:
      c[section] = values
  c.distill.teacher = teacher
  c.train.num_steps = 1000
  c.train.lr_schedule = 'constant'
  c.train.learning_rate = 3e-4
  c.losses.world_vel = 10.0
  if not c.eval.recognizer_dir and os.path.isdir(os.path.join(teacher, 'recognizer')):
    c.eval.recognizer_dir = os.path.join(teacher, 'recognizer')  # the teacher's evaluator
  return c
