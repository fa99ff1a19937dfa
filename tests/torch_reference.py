"""An independent PyTorch forward of ReGenNet's CMDM ('online'/'offline'), written from the paper
and REGENNET_SPEC.md with the official module names, to check imported weights against."""

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
      self.seqTransEncoder = nn.TransformerEncoder(
          nn.TransformerEncoderLayer(d, heads, ff, 0.1, activation='gelu'), layers)
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
