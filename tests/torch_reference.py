"""An independent PyTorch forward of ReGenNet's CMDM ('online'/'offline'), written from the paper
and the released code with the official module names (docs/architecture.md), to check imported weights against."""

import math

import torch
from torch import nn


class _Linear(nn.Module):
  def __init__(self, i, o):
    super().__init__()
    self.poseEmbedding = nn.Linear(i, o)


class _Final(nn.Module):
  def __init__(self, i, o):
    super().__init__()
    self.poseFinal = nn.Linear(i, o)


class _Time(nn.Module):
  def __init__(self, d):
    super().__init__()
    self.time_embed = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))


class _Action(nn.Module):
  def __init__(self, n, d):
    super().__init__()
    self.action_embedding = nn.Parameter(torch.randn(n, d))


def sinusoid(max_len, d):
  pe = torch.zeros(max_len, d)
  pos = torch.arange(max_len, dtype=torch.float64).unsqueeze(1)
  div = torch.exp(torch.arange(0, d, 2, dtype=torch.float64) * (-math.log(10000.0) / d))
  pe[:, 0::2] = torch.sin(pos * div).float()
  pe[:, 1::2] = torch.cos(pos * div).float()
  return pe


class CMDM(nn.Module):
  def __init__(self, arch='online', layers=2, d=64, ff=128, heads=4, concat=True, actions=0):
    super().__init__()
    self.arch, self.concat = arch, concat
    self.input_process = _Linear(336, d)
    self.cmo_process = _Linear(336, d)
    if concat:
      self.fuse_process = nn.Linear(2 * d, d)
    if arch == 'online':
      self.seqTransDecoder = nn.TransformerDecoder(
          nn.TransformerDecoderLayer(d, heads, ff, 0.1, activation='gelu'), layers)
    else:
      self.seqTransEncoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(d,
                                                                              heads,
                                                                              ff,
                                                                              0.1,
                                                                              activation='gelu'),
                                                   layers,
                                                   enable_nested_tensor=False)
    self.embed_timestep = _Time(d)
    if actions:
      self.embed_action = _Action(actions, d)
    self.output_process = _Final(d, 336)
    self.register_buffer('pe', sinusoid(5000, d))

  def forward(self, x, t, actor, action=None):
    """x, actor: [B, T, 56, 6] (our layout); returns [B, T, 56, 6]."""
    b, frames = x.shape[:2]
    emb = self.embed_timestep.time_embed(self.pe[t])[None]  # [1, B, d]
    if action is not None:
      emb = emb + self.embed_action.action_embedding[action][None]
    seq = lambda m: m.reshape(b, frames, 336).permute(1, 0, 2)
    h = self.input_process.poseEmbedding(seq(x))
    a = self.cmo_process.poseEmbedding(seq(actor))
    h = self.fuse_process(torch.cat([h, a], -1)) if self.concat else h + a
    if self.arch == 'online':
      h = h + self.pe[:frames, None]
      mask = torch.triu(torch.full((frames, frames), float('-inf')), 1)
      out = self.seqTransDecoder(tgt=h, memory=emb, tgt_mask=mask)
    else:
      h = torch.cat([emb, h], 0) + self.pe[:frames + 1, None]
      out = self.seqTransEncoder(h)[1:]
    return self.output_process.poseFinal(out).reshape(frames, b, 56, 6).permute(1, 0, 2, 3)


class STGCNBlock(nn.Module):
  """mmskeleton's st_gcn block (gcn 1x1 conv to K*out, graph einsum, tcn BN-ReLU-conv9-BN)."""
  def __init__(self, cin, cout, stride, residual, k=3):
    super().__init__()
    self.k = k
    self.gcn = nn.Module()
    self.gcn.conv = nn.Conv2d(cin, cout * k, (1, 1))
    self.tcn = nn.Sequential(nn.BatchNorm2d(cout), nn.ReLU(),
                             nn.Conv2d(cout, cout, (9, 1), (stride, 1), (4, 0)),
                             nn.BatchNorm2d(cout), nn.Dropout(0.0))
    if not residual:
      self.residual = None
    elif cin == cout and stride == 1:
      self.residual = 'identity'
    else:
      self.residual = nn.Sequential(nn.Conv2d(cin, cout, 1, (stride, 1)), nn.BatchNorm2d(cout))

  def forward(self, x, a):
    res = 0 if self.residual is None else (x if self.residual == 'identity' else self.residual(x))
    h = self.gcn.conv(x)
    n, kc, t, v = h.shape
    h = torch.einsum('nkctv,kvw->nctw', h.view(n, self.k, kc // self.k, t, v), a)
    return torch.relu(self.tcn(h) + res)


class STGCN(nn.Module):
  """The two-person ST-GCN evaluator, mmskeleton layout: input [N, C=6, T, V=56, M=2]."""
  def __init__(self, adjacency, num_classes, width=0.25):
    super().__init__()
    self.register_buffer('A', torch.as_tensor(adjacency))
    self.data_bn = nn.BatchNorm1d(2 * 56 * 6)
    chans = [max(8, int(c * width)) for c in (64, 64, 64, 64, 128, 128, 128, 256, 256, 256)]
    strides = [1, 1, 1, 1, 2, 1, 1, 2, 1, 1]
    cin = [6] + chans[:-1]
    self.st_gcn_networks = nn.ModuleList(
        [STGCNBlock(cin[i], chans[i], strides[i], i > 0) for i in range(10)])
    self.edge_importance = nn.ParameterList(
        [nn.Parameter(torch.ones(self.A.shape)) for _ in range(10)])
    self.fcn = nn.Conv2d(chans[-1], num_classes, 1)

  def forward(self, x):
    n, c, t, v, m = x.shape
    x = x.permute(0, 4, 3, 1, 2).reshape(n, m * v * c, t)
    x = self.data_bn(x)
    x = x.view(n, m, v, c, t).permute(0, 1, 3, 4, 2).reshape(n * m, c, t, v)
    for block, imp in zip(self.st_gcn_networks, self.edge_importance):
      x = block(x, self.A * imp)
    x = torch.nn.functional.avg_pool2d(x, x.shape[2:]).view(n, m, -1, 1, 1).mean(1)
    return self.fcn(x).view(n, -1), x.view(n, -1)
