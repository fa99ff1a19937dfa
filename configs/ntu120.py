"""NTU120-AS (26 two-person classes, xsub split) with the paper's settings and the fast recipe
(configs/recipes.py); `--config=configs/ntu120.py:original` is the paper's recipe exactly.

Build the dataset first (python -m data_prep.build --dataset=ntu120_as ...; see the README), then:
  python run.py --config=configs/ntu120.py --config.data.dir=/data/tfds
"""

from configs import base
from configs import recipes


def get_config(recipe='fast'):
  c = base.get_config()
  c.data.name = 'ntu120_as'
  c.data.num_frames = 60  # 2 s at 30 fps
  c.data.fps = 30
  c.losses.fc_threshold = 0.03
  c.train.batch_size = 64
  return recipes.apply(c, recipe)
