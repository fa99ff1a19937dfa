"""Default run: the embedded synthetic interactions, the fast recipe (configs/recipes.py) and a small
model that learns the interactions in a few minutes on a CPU.

python run.py                                   # this config
python run.py --config.train.num_steps=5000     # any field can be overridden
"""

from configs import base
from configs import recipes


def get_config(recipe='fast'):
  c = recipes.apply(base.get_config(), recipe)
  c.data.name = 'synthetic'
  c.data.num_frames = 40
  c.model.num_layers = 2
  c.model.latent_dim = 128
  c.model.ff_size = 256
  c.train.batch_size = 32
  c.train.num_steps = 2000
  c.train.log_every = 50
  c.train.checkpoint_every = 500
  if recipe == 'fast':
    # A small model on a short budget learns fastest with a larger step and without dropout.
    c.model.dropout = 0.0
    c.train.learning_rate = 1e-3
    # Half the windows from a sequence's first frame: reactions generated from an actor's first
    # frame (streams, the per-class checks) start still instead of drifting (README, "Recipe").
    c.data.start_prob = 0.5
    # The network outputs the reactor's deviation from the training reactors' mean in units of
    # their spread (about 0.07 per feature): every class's interaction in 2,000 steps (README).
    c.model.center = 'data'
    c.model.sigma_data = 0.07
  c.recognizer.width = 0.25  # a slim evaluator: ~1/16 of the paper's cost on a CPU
  c.recognizer.batch_size = 16
  c.recognizer.num_steps = 500
  c.recognizer.learning_rate = 1e-3
  c.eval.num_samples = 128
  return c
