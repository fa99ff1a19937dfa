"""NTU120-AS (26 two-person classes, xsub split) with the paper's settings and the fast recipe
(configs/recipes.py); `--config=configs/ntu120.py:original` is the paper's recipe exactly.

Convert the data first (see data_prep/), then:
  python run.py --config=configs/ntu120.py --config.data.path=/data/ntu120_as
"""

from configs import base
from configs import recipes


def get_config(recipe='fast'):
  c = base.get_config()
  c.data.name = 'ntu120'
  c.data.num_frames = 60  # 2 s at 30 fps
  c.data.fps = 30
  c.losses.fc_threshold = 0.03
  c.train.batch_size = 64
  return recipes.apply(c, recipe)
