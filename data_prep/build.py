"""Builds any dataset as a TFDS dataset (array_record files, no TensorFlow) in a data dir.

  python -m data_prep.build --dataset=chi3d_as --manual_dir=/downloads/chi3d_as --data_dir=/data/tfds
  python run.py --config=configs/chi3d.py --config.data.dir=/data/tfds

Datasets: ntu120_as, chi3d_as, ntu120_kinect, chi3d, interhuman_as, smplx_pairs, synthetic
(data_prep/builders.py says what each reads). `--dataset=X --help` lists X's own options (for
example --order_labels); where it reads from defaults to the manual dir, whose expected layout
`--dataset=X --instructions` prints. The dataset lands in <data_dir>/X/<version>/ only when
complete; --skip_bad leaves malformed sequences out (listed in its metadata.json and printed).
"""

import argparse
import os
import shutil

from data_prep import builders
from data_prep import common
from regennet_jax import errors
from regennet_jax.data import builders as base_builders
from regennet_jax.data import records

_COMMON_FLAGS = ('dataset', 'data_dir', 'manual_dir', 'overwrite', 'skip_bad', 'instructions')


def _parser(dataset=None, add_help=True):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawTextHelpFormatter,
                                   add_help=add_help)
  parser.add_argument('--dataset', choices=sorted(builders.BUILDERS), required=add_help)
  parser.add_argument('--data_dir',
                      default=base_builders.default_data_dir(),
                      help='TFDS data dir to build into (default: %(default)s)')
  parser.add_argument('--manual_dir', help='folder holding the manual download')
  parser.add_argument('--overwrite', action='store_true', help='rebuild an existing dataset')
  parser.add_argument('--skip_bad',
                      action='store_true',
                      help='leave malformed sequences out (listed) instead of stopping')
  parser.add_argument('--instructions',
                      action='store_true',
                      help="print the dataset's download instructions and exit")
  builder = builders.BUILDERS.get(dataset)
  if dataset == 'synthetic':
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--train_size', type=int, default=512)
    parser.add_argument('--test_size', type=int, default=128)
    parser.add_argument('--min_frames', type=int, default=50)
    parser.add_argument('--max_frames', type=int, default=80)
  elif builder is not None:
    builder.READER.add_source_flags(parser.add_argument_group(f'{dataset} options'),
                                    default_dir='<manual_dir>')
  return parser


def main(argv=None):
  known, _ = _parser(add_help=False).parse_known_args(argv)
  args = _parser(known.dataset).parse_args(argv)
  cls = builders.BUILDERS[args.dataset]
  instructions = getattr(cls, 'MANUAL_DOWNLOAD_INSTRUCTIONS', None)
  if args.instructions:
    print(instructions or f'{args.dataset} needs no download.')
    return None
  kwargs = dict(data_dir=args.data_dir, skip_bad=args.skip_bad)
  if args.dataset == 'synthetic':
    make = lambda: base_builders.synthetic_builder(args.data_dir,
                                                   args.seed,
                                                   args.train_size,
                                                   args.test_size,
                                                   args.min_frames,
                                                   args.max_frames,
                                                   skip_bad=args.skip_bad)
  else:
    if not args.manual_dir:
      raise errors.ConfigError(f'--dataset={args.dataset} reads a manual download: give '
                               f'--manual_dir. Expected there:\n{instructions}')
    if not os.path.isdir(args.manual_dir) or not os.listdir(args.manual_dir):
      raise errors.MissingFileError(f'{args.manual_dir}: missing or empty. Expected there:\n'
                                    f'{instructions}')
    source = {k: v for k, v in vars(args).items() if k not in _COMMON_FLAGS}
    kwargs['source_args'] = argparse.Namespace(**source)
    if args.dataset == 'smplx_pairs':
      kwargs['manual_dir'] = args.manual_dir
    make = lambda: cls(**kwargs)
  builder = make()
  target = builder.data_dir
  if os.path.exists(os.path.join(target, records.INFO_FILE)):
    if not args.overwrite:
      raise errors.OutputExistsError(f'{target} already holds {args.dataset}; pass --overwrite '
                                     'to rebuild it.')
    shutil.rmtree(target)
    builder = make()  # a fresh builder: the old one has read the removed dataset's info
  import tensorflow_datasets as tfds
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=args.manual_dir))
  info = records.read_info(target)
  if info['skipped']:
    print(f"{len(info['skipped'])} sequences left out (also in {target}/metadata.json):")
    for line in info['skipped']:
      print('  ' + line.replace('\t', ': '))
  return {
      'dataset': args.dataset,
      'directory': target,
      'splits': info['splits'],
      'skipped': len(info['skipped']),
      'run_py': f'--config.data.name={builder.name} --config.data.dir={args.data_dir}'
  }


if __name__ == '__main__':
  common.main_wrapper(main)
