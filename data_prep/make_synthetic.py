"""Writes the embedded synthetic interactions to one dataset directory (a TFDS dataset).

  python -m data_prep.make_synthetic --out=data/synthetic --train_size=2000 --test_size=400
  python run.py --config.data.name=synthetic_disk --config.data.path=data/synthetic

(`python run.py` builds the synthetic dataset it needs by itself, and `python -m data_prep.build
--dataset=synthetic` builds one into a data dir; this command is for a dataset in a folder of your
choice.)
"""

import argparse

from data_prep import common
from regennet_jax.data import synthetic


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawTextHelpFormatter)
  parser.add_argument('--train_size', type=int, default=512)
  parser.add_argument('--test_size', type=int, default=128)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--min_frames', type=int, default=50)
  parser.add_argument('--max_frames', type=int, default=80)
  common.add_common_flags(parser)
  args = parser.parse_args(argv)
  kwargs = dict(min_frames=args.min_frames, max_frames=args.max_frames)

  def items():
    for split, size in (('train', args.train_size), ('test', args.test_size)):
      for i in range(size):
        yield split, synthetic.generate_sample(synthetic.split_seed(args.seed, split), i, **kwargs)

  return common.convert(args.out,
                        'synthetic',
                        synthetic.ACTIONS,
                        synthetic.FPS,
                        f'synthetic seed {args.seed}',
                        items(),
                        total=args.train_size + args.test_size,
                        overwrite=args.overwrite)


if __name__ == '__main__':
  common.main_wrapper(main)
