"""Training recipes on top of a config: 'original' (the paper's, exactly: configs/base.py) and
'fast', which learns convincing reactions in far fewer steps (README, "Training recipe").

A dataset config takes the recipe after a colon: --config=configs/chi3d.py:original.
"""

RECIPES = ('fast', 'original')


def apply(config, recipe):
  """Returns `config` with `recipe` applied ('original' leaves the paper's settings as they are)."""
  if recipe not in RECIPES:
    raise ValueError(f'unknown recipe {recipe!r}: use one of {RECIPES} '
                     "(e.g. --config=configs/chi3d.py:original)")
  if recipe == 'fast':
    # The network sees both people from the actor's first frame (position and facing stop being
    # nuisance variation), and the actor's joint positions next to its rotations.
    config.model.actor_frame = True
    config.model.actor_positions = True
    # Where the reactor's joints are, not only how its joints turn: hands meet where they should.
    config.losses.world_joints = 1.0
    # Samples are valid rotations before they are saved or scored.
    config.sample.orthonormalize = True
    # A short linear warm-up of the learning rate.
    config.train.warmup_steps = 100
  return config
