"""Input pipeline throughput (windows/s) from an on-disk dataset, against what training consumes.

  python bench/input_pipeline.py [--num_frames=60 --batch_size=64]

Writes a synthetic dataset in the standard format to a temporary folder, then times batches from
the grain pipeline (ArrayRecord read, decode, crop, rot6d conversion, batching).
"""

import argparse
import tempfile
import time

from common import emit

from data_prep import make_synthetic
from regennet_jax.data import pipeline
from regennet_jax.data import records


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--num_frames', type=int, default=60)
  parser.add_argument('--batch_size', type=int, default=64)
  parser.add_argument('--batches', type=int, default=100)
  parser.add_argument('--threads', type=int, default=2)
  args = parser.parse_args()
  with tempfile.TemporaryDirectory() as tmp:
    make_synthetic.main([
        f'--out={tmp}/ds', '--train_size=256', '--test_size=8', f'--min_frames={args.num_frames}',
        f'--max_frames={2 * args.num_frames}'
    ])
    source = records.RecordSource(f'{tmp}/ds', 'train')
    it = iter(
        pipeline.make_dataset(source,
                              args.batch_size,
                              pipeline.Windowing(args.num_frames),
                              num_threads=args.threads,
                              prefetch=8))
    next(it)
    t = time.perf_counter()
    for _ in range(args.batches):
      next(it)
    seconds = time.perf_counter() - t
  per_sec = args.batches * args.batch_size / seconds
  emit({
      'benchmark': 'input_pipeline',
      'num_frames': args.num_frames,
      'batch_size': args.batch_size,
      'threads': args.threads,
      'windows_per_sec': per_sec,
      'batches_per_sec': args.batches / seconds,
      'note': 'compare with samples_per_sec of bench/train_step.py'
  })


if __name__ == '__main__':
  main()
