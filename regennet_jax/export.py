"""SMPL-X animation files in the AMASS convention: one per person and reaction, for Blender and
other tools.

Each file is an npz with
  poses [T, 165]: axis-angle of the 55 SMPL-X joints in SMPL-X order (root, 21 body, jaw, two eyes,
      15 left-hand and 15 right-hand joints), what AMASS's SMPL-X files hold;
  trans [T, 3]: the SMPL-X `transl` (the pelvis position minus the rest pelvis of the body model);
  betas [10], gender ('neutral'), mocap_frame_rate (fps), surface_model_type ('smplx'),
  and this package's role ('actor' or 'reactor'), label, action and sequence name.
The SMPL-X Blender add-on imports these files ("Add animation"), and `smplx.create(...,
model_type='smplx', use_pca=False, flat_hand_mean=True)` poses them (see tests/test_export.py).
"""

import os
import shutil

import numpy as np

from regennet_jax.body import rotations
from regennet_jax.body import skeleton


def amass_arrays(motion, rest_joints, betas=None):
  """(poses [T, 165], trans [T, 3], betas [10]) of one person's motion [T, 56, 6]."""
  motion = np.asarray(motion, np.float64)
  poses = rotations.rot6d_to_axis_angle(motion[:, :skeleton.NUM_JOINTS])  # numpy in, numpy out
  # The motion's translation row is the pelvis position; SMPL-X adds `transl` to a pelvis that
  # sits at its rest position.
  trans = motion[:, skeleton.TRANSLATION_ROW, :3] - np.asarray(rest_joints, np.float64)[0]
  full_betas = np.zeros(10)
  if betas is not None:
    full_betas[:len(betas)] = betas
  return (poses.reshape(len(motion), -1).astype(np.float32), trans.astype(np.float32),
          full_betas.astype(np.float32))


def write_amass(path, motion, fps, rest_joints, role, label, action, name='', betas=None):
  """Writes one person's motion [T, 56, 6] as an AMASS-convention SMPL-X npz at `path`."""
  poses, trans, full_betas = amass_arrays(motion, rest_joints, betas)
  np.savez(path,
           poses=poses,
           trans=trans,
           betas=full_betas,
           gender=np.array('neutral'),
           mocap_frame_rate=np.array(float(fps)),
           surface_model_type=np.array('smplx'),
           role=np.array(role),
           label=np.array(int(label)),
           action=np.array(action),
           name=np.array(name))
  return path


def export_reactions(out_dir,
                     actor,
                     reactor,
                     labels,
                     class_names,
                     fps,
                     rest_joints,
                     names=None,
                     betas=None):
  """One file per reaction and person in `out_dir` ({index}_{action}_{actor|reactor}.npz;
  with K reactions per actor, reactor [N, K, T, 56, 6], one reactor file per repetition).
  Files from an earlier export into `out_dir` are removed first, so the folder holds one set.
  Returns the paths written."""
  if os.path.isdir(out_dir):
    shutil.rmtree(out_dir)
  os.makedirs(out_dir)
  paths = []
  for i in range(len(actor)):
    action = class_names[int(labels[i])]
    name = '' if names is None else str(names[i])
    stem = os.path.join(out_dir, f'{i:04d}_{action}')
    paths.append(
        write_amass(f'{stem}_actor.npz', actor[i], fps, rest_joints, 'actor', labels[i], action,
                    name, betas))
    reactions = reactor[i] if reactor.ndim == actor.ndim + 1 else reactor[i][None]
    for k, reaction in enumerate(reactions):
      suffix = '' if len(reactions) == 1 else f'_{k}'
      paths.append(
          write_amass(f'{stem}_reactor{suffix}.npz', reaction, fps, rest_joints, 'reactor',
                      labels[i], action, name, betas))
  return paths
