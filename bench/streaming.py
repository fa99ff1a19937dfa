"""Streaming latency: milliseconds per reactor frame (p50/p99/max) for several denoising-step
counts, and the throughput of many simultaneous streams.

  python bench/streaming.py [--preset=ntu|default] [--steps=2,5,10,trailing1] [--streams=1,8,32]
                            [--kernels=auto|native|xla]

A frame's passes each read every kernel once for one token, so beside the fraction of the matmul
rate it prints the megabytes of weights a frame reads (and what XLA counts as read, of the same
step on XLA's products), the rate they were read at, and this machine's measured matrix-vector
bandwidth on the stream's kernels (common.matvec_bandwidth, over as many bytes of kernels as one
pass reads): weights / bandwidth is the least time a frame can take with them here.

Paper Table 7 (GPU): 0.33 / 0.76 / 1.58 / 15.17 ms per frame for 2 / 5 / 10 / 100 steps.
"""

import argparse

from common import MATVEC_KERNEL_SHAPE, emit, load_config, matvec_bandwidth, respacing_for, roofline

import jax
import jax.numpy as jnp
import numpy as np

from regennet_jax import factory
from regennet_jax import streaming
from regennet_jax.body import skeleton


def xla_cost_of_a_frame(model, schedule, stream):
  """XLA's cost analysis of the step a stream runs for every frame, compiled on XLA's own products:
  it does not see into a native kernel's custom call, which reads the same weights."""
  step = streaming.make_stream_step(model, schedule, cross_from_cache=True)
  spec = lambda tree: jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), tree)
  frame = jax.ShapeDtypeStruct((stream.rows,) + (skeleton.MOTION_ROWS, skeleton.MOTION_CHANNELS),
                               jnp.float32)
  compiled = jax.jit(step).lower(spec(stream.params), spec(stream._caches), frame,
                                 spec(stream.label), jnp.int32(1), spec(stream.key)).compile()
  cost = compiled.cost_analysis()
  return cost[0] if isinstance(cost, list) else cost


def weight_bytes_per_pass(params):
  """Bytes of the parameters one denoising pass of a frame reads: all but the cross-attention
  and the memory token's, whose outputs the stream computed before its first frame."""
  skipped = ('cross_attn', 'condition')
  return sum(leaf.nbytes
             for path, leaf in jax.tree_util.tree_leaves_with_path(params)
             if not any(getattr(p, 'key', None) in skipped for p in path))


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--preset', default='ntu', help="'ntu', 'default' or a configs/ file name")
  parser.add_argument('--steps',
                      default='2,5,10',
                      help="denoising steps per frame: N (respacing ddimN) or trailingN (a "
                      'one-pass student streams with trailing1)')
  parser.add_argument('--streams', default='1,8,32', help='simultaneous streams (batch sizes)')
  parser.add_argument('--frames', type=int, default=60)
  parser.add_argument('--matmul_dtype', choices=['float32', 'bfloat16'], default='float32')
  parser.add_argument('--kernels',
                      choices=streaming.KERNELS,
                      default='auto',
                      help="one token's products: native.few_rows, XLA's, or native if it builds")
  args = parser.parse_args()
  config = load_config(args.preset)
  config.sample.matmul_dtype = args.matmul_dtype
  model = factory.make_model(config, 26, for_sampling=True)
  layout = (skeleton.MOTION_ROWS, skeleton.MOTION_CHANNELS)
  x = jnp.zeros((1, args.frames) + layout)
  params = model.init(jax.random.PRNGKey(0), x, jnp.zeros((1,), jnp.int32), x)['params']
  rng = np.random.default_rng(0)
  results = {}
  for streams in [int(s) for s in args.streams.split(',')]:
    actor = rng.normal(0, 0.3, (args.frames, streams) + layout).astype(np.float32)
    for steps in args.steps.split(','):
      if streams > 1 and steps not in ('5', 'trailing1'):
        continue  # many streams: the paper's evaluation setting and a student's only
      schedule = factory.make_schedule(config, respacing_for(steps))
      stream = streaming.ReactionStream(model,
                                        params,
                                        schedule,
                                        jax.random.PRNGKey(1),
                                        batch_size=streams,
                                        max_frames=args.frames,
                                        kernels=args.kernels)
      for f in range(args.frames):
        stream.push(actor[f])
      report = stream.latency_report()
      cost = xla_cost_of_a_frame(model, schedule, stream)
      # The step scans over the denoising steps; XLA counts the scan's body once.
      flops = schedule.num_steps * float(cost.get('flops', np.nan))
      report.update(roofline(flops, report['p50_ms'] / 1000, args.matmul_dtype))
      # A one-token pass reads every kernel once per denoising step: it is bound by how fast
      # the weights stream from cache or memory, not by arithmetic. The bandwidth is one
      # stream's (on XLA a bfloat16 stream computes two rows); many streams share each read.
      # XLA's count of bytes also has what its own products convert, copy and write (bfloat16
      # kernels are widened to float32 first); the weights themselves are what a pass must read.
      xla_read = schedule.num_steps * float(cost.get('bytes accessed', np.nan))
      per_pass = weight_bytes_per_pass(stream.params)
      read = schedule.num_steps * per_pass
      # Measured over as many bytes of kernels as a pass reads: the rate falls as the working
      # set outgrows the caches (on the Intel Xeon of the README about 40 GB/s for 67 MB, 30
      # for 134 MB).
      kernel_bytes = np.prod(MATVEC_KERNEL_SHAPE) * jnp.dtype(args.matmul_dtype).itemsize
      matrices = max(1, round(per_pass / kernel_bytes))
      bandwidth = matvec_bandwidth(args.matmul_dtype,
                                   rows=max(1, stream.rows // streams),
                                   matrices=matrices,
                                   kernels_on=stream.kernels)
      achieved = read / (report['p50_ms'] / 1e3)  # bytes/s
      report.update({
          'xla_mb_read_per_frame': xla_read / 1e6,
          'weights_mb_read_per_frame': read / 1e6,
          'achieved_gb_per_s': achieved / 1e9,
          'matvec_gb_per_s_at_pass_size': bandwidth / 1e9,
          'matvec_working_set_mb': matrices * kernel_bytes / 1e6,
          'fraction_of_measured_matvec_bandwidth': achieved / bandwidth,
          'ms_at_measured_matvec_bandwidth': read / bandwidth * 1e3
      })
      report['frames_per_sec'] = streams * 1000 / report['p50_ms']
      results[f'{streams}_streams_{steps}_steps'] = report
  m = config.model
  emit({
      'benchmark': 'streaming',
      'matvec_gb_per_s': {
          f'{dtype}, {rows} row(s)': matvec_bandwidth(dtype, rows=rows) / 1e9
          for dtype, rows in (('float32', 1), ('bfloat16', 1), ('bfloat16', 2))
      },
      'kernels': args.kernels,
      'preset': args.preset,
      'num_layers': m.num_layers,
      'latent_dim': m.latent_dim,
      'frames': args.frames,
      'matmul_dtype': args.matmul_dtype,
      'max_frames': args.frames,
      'latency': results
  })


if __name__ == '__main__':
  main()
