"""Official ReGenNet PyTorch weights (model*.pt state_dicts) -> this package's Flax parameters.

The architecture is read off the state dict (online decoder vs offline encoder, layers, width,
fusion, action embedding), so the same function imports every released model. PyTorch Linear
stores W as [out, in] (Flax: kernel [in, out]); nn.MultiheadAttention packs q, k, v in
in_proj_weight [3d, d] (Flax: per-head kernels [d, heads, d/heads]).
"""

import re

import numpy as np
from regennet_jax import errors

_IGNORED = re.compile(r'(^|\.)(pe|rot2xyz\..*|clip_model\..*)$')


def _strip(state_dict):
  out = {}
  for key, value in state_dict.items():
    for prefix in ('module.', 'model.'):
      if key.startswith(prefix):
        key = key[len(prefix):]
    out[key] = np.asarray(value, np.float32)
  return out


def infer_architecture(state_dict, num_heads=4):
  """Model settings implied by the keys and shapes."""
  sd = _strip(state_dict)
  if 'input_process.poseEmbedding.weight' not in sd:
    raise errors.DataError('no input_process.poseEmbedding.weight: not a ReGenNet/CMDM model '
                           f'(keys start with {sorted(sd)[:5]}).')
  latent, feats = sd['input_process.poseEmbedding.weight'].shape
  stack = 'seqTransDecoder' if any(
      k.startswith('seqTransDecoder.') for k in sd) else 'seqTransEncoder'
  if not any(k.startswith(stack + '.') for k in sd):
    raise errors.DataError('neither seqTransDecoder nor seqTransEncoder layers found; only the '
                           "'online' and 'offline' ReGenNet architectures can be imported.")
  layers = 1 + max(
      int(m.group(1)) for k in sd for m in [re.match(stack + r'\.layers\.(\d+)\.', k)] if m)
  arch = {
      'arch':
          'online' if stack == 'seqTransDecoder' else 'offline',
      'num_layers':
          layers,
      'latent_dim':
          int(latent),
      'ff_size':
          int(sd[f'{stack}.layers.0.linear1.weight'].shape[0]),
      'num_heads':
          num_heads,
      'fusion':
          'concat' if 'fuse_process.weight' in sd else 'add',
      'cond_mode':
          'action' if 'embed_action.action_embedding' in sd else 'no_cond',
      'num_actions':
          int(sd['embed_action.action_embedding'].shape[0])
          if 'embed_action.action_embedding' in sd else 1,
  }
  if feats != 336:
    raise errors.DataError(f'input_process takes {feats} features; only SMPL-X models '
                           '(56 x 6 = 336) are supported.')
  return arch


def _dense(sd, name):
  return {'kernel': sd[f'{name}.weight'].T, 'bias': sd[f'{name}.bias']}


def _attention(sd, name, heads):
  w, b = sd[f'{name}.in_proj_weight'], sd[f'{name}.in_proj_bias']
  d = w.shape[1]
  out = {}
  for i, part in enumerate(('query', 'key', 'value')):
    out[part] = {
        'kernel': w[i * d:(i + 1) * d].T.reshape(d, heads, d // heads),
        'bias': b[i * d:(i + 1) * d].reshape(heads, d // heads)
    }
  out['out'] = {
      'kernel': sd[f'{name}.out_proj.weight'].T.reshape(heads, d // heads, d),
      'bias': sd[f'{name}.out_proj.bias']
  }
  return out


def _norm(sd, name):
  return {'scale': sd[f'{name}.weight'], 'bias': sd[f'{name}.bias']}


def convert_state_dict(state_dict, num_heads=4):
  """Returns (flax params, architecture dict); unknown or missing keys raise errors.DataError."""
  sd = _strip(state_dict)
  arch = infer_architecture(sd, num_heads)
  used = set()
  get = sd.__getitem__

  class Tracking(dict):
    def __getitem__(self, key):
      if key not in sd:
        raise errors.DataError(f'missing key {key!r} for a {arch["arch"]} model with '
                               f'{arch["num_layers"]} layers.')
      used.add(key)
      return get(key)

  t = Tracking()
  # The Denoiser's named parts (model.py): condition, frames, decoder | encoder, output_process.
  condition = {
      'time_embed': {
          'dense1': _dense(t, 'embed_timestep.time_embed.0'),
          'dense2': _dense(t, 'embed_timestep.time_embed.2')
      }
  }
  if arch['cond_mode'] == 'action':
    condition['action_embedding'] = t['embed_action.action_embedding']
  frames = {
      'input_process': _dense(t, 'input_process.poseEmbedding'),
      'actor_process': _dense(t, 'cmo_process.poseEmbedding')
  }
  if arch['fusion'] == 'concat':
    frames['fuse'] = _dense(t, 'fuse_process')
  layers = {}
  params = {
      'condition': condition,
      'frames': frames,
      'decoder' if arch['arch'] == 'online' else 'encoder': layers,
      'output_process': _dense(t, 'output_process.poseFinal')
  }
  stack = 'seqTransDecoder' if arch['arch'] == 'online' else 'seqTransEncoder'
  for i in range(arch['num_layers']):
    p = f'{stack}.layers.{i}'
    layer = {
        'self_attn': _attention(t, f'{p}.self_attn', num_heads),
        'ff': {
            'linear1': _dense(t, f'{p}.linear1'),
            'linear2': _dense(t, f'{p}.linear2')
        },
        'norm1': _norm(t, f'{p}.norm1'),
        'norm2': _norm(t, f'{p}.norm2')
    }
    if arch['arch'] == 'online':
      layer['cross_attn'] = _attention(t, f'{p}.multihead_attn', num_heads)
      layer['norm3'] = _norm(t, f'{p}.norm3')
    layers[f'layer_{i}'] = layer
  unused = sorted(k for k in sd if k not in used and not _IGNORED.search(k))
  if unused:
    raise errors.DataError(f'state dict has keys this importer does not map: {unused[:8]}' +
                           (' ...' if len(unused) > 8 else ''))
  return params, arch


# ----------------------------------------------------------------------------- ST-GCN recognizer


def _conv(sd, name):
  """PyTorch Conv2d [out, in, kh, kw] -> Flax Conv kernel [kh, kw, in, out]."""
  return {'kernel': sd[f'{name}.weight'].transpose(2, 3, 1, 0), 'bias': sd[f'{name}.bias']}


def _bn(sd, name):
  return ({
      'scale': sd[f'{name}.weight'],
      'bias': sd[f'{name}.bias']
  }, {
      'mean': sd[f'{name}.running_mean'],
      'var': sd[f'{name}.running_var']
  })


def convert_stgcn_state_dict(state_dict):
  """The released ST-GCN evaluator (checkpoint_*.pth.tar) -> (Flax variables, info).

  Checks that the checkpoint's graph (buffer 'A') is the one this package builds, so features and
  logits mean the same thing.
  """
  from regennet_jax.evaluation import stgcn
  sd = _strip(state_dict)
  if 'data_bn.running_mean' not in sd or 'fcn.weight' not in sd:
    raise errors.DataError('no data_bn/fcn keys: not an ST-GCN recognizer checkpoint.')
  if 'A' in sd and not np.allclose(sd['A'], stgcn.spatial_adjacency(), atol=1e-5):
    raise errors.DataError("the checkpoint's graph (buffer 'A') differs from the SMPL-X "
                           'spatial graph built here; its features would not be comparable.')
  missing = [k for k in ('data_bn.weight',) if k not in sd]
  if missing:
    raise errors.DataError(f'missing keys {missing}')
  params, stats = {}, {}
  params['data_bn'], stats['data_bn'] = _bn(sd, 'data_bn')
  blocks = 1 + max(
      int(m.group(1)) for k in sd for m in [re.match(r'st_gcn_networks\.(\d+)\.', k)] if m)
  width = sd['st_gcn_networks.0.tcn.2.weight'].shape[0] / stgcn.BLOCKS[0][0]
  for i in range(blocks):
    p = f'st_gcn_networks.{i}'
    block = {
        'gcn_conv': _conv(sd, f'{p}.gcn.conv'),
        'tcn_conv': _conv(sd, f'{p}.tcn.2'),
        'edge_importance': sd[f'edge_importance.{i}']
    }
    bstats = {}
    block['gcn_bn'], bstats['gcn_bn'] = _bn(sd, f'{p}.tcn.0')
    block['tcn_bn'], bstats['tcn_bn'] = _bn(sd, f'{p}.tcn.3')
    if f'{p}.residual.0.weight' in sd:
      block['res_conv'] = _conv(sd, f'{p}.residual.0')
      block['res_bn'], bstats['res_bn'] = _bn(sd, f'{p}.residual.1')
    params[f'block_{i}'], stats[f'block_{i}'] = block, bstats
  fcn = sd['fcn.weight']
  params['fcn'] = {'kernel': fcn[:, :, 0, 0].T, 'bias': sd['fcn.bias']}
  return {
      'params': params,
      'batch_stats': stats
  }, {
      'num_classes': int(fcn.shape[0]),
      'width': float(width)
  }
