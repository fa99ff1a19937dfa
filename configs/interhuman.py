"""InterHuman-AS with the paper's settings and the fast recipe
(configs/recipes.py); `--config=configs/interhuman.py:original` is the paper's recipe exactly.

The paper gives no window length for InterHuman; 150 frames (5 s at 30 fps) is our choice. InterHuman
uses SMPL bodies; the converter maps them onto the SMPL-X layout (body joints kept, hands at rest).
  python run.py --config=configs/interhuman.py --config.data.dir=/data/tfds
"""

from configs import base
from configs import recipes


def get_config(recipe='fast'):
  c = base.get_config()
  c.data.name = 'interhuman_as'
  c.data.num_frames = 150
  c.data.fps = 30
  c.train.batch_size = 64
  return recipes.apply(c, recipe)
