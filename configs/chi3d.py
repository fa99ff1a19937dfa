"""Chi3D-AS (8 classes) with the paper's settings and the fast recipe
(configs/recipes.py); `--config=configs/chi3d.py:original` is the paper's recipe exactly.

Build the dataset first (python -m data_prep.build --dataset=chi3d_as ...; see the README), then:
  python run.py --config=configs/chi3d.py --config.data.dir=/data/tfds
"""

from configs import base
from configs import recipes


def get_config(recipe='fast'):
  c = base.get_config()
  c.data.name = 'chi3d_as'
  c.data.num_frames = 150  # Chi3D needs 150 (the original's issue #4)
  c.data.fps = 50
  c.losses.fc_threshold = 0.01
  c.train.batch_size = 16  # the paper's Chi3D batch
  return recipes.apply(c, recipe)
