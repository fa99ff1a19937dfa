"""Generated stand-ins for licensed files, in their real layouts (nothing licensed is committed)."""

import os

import numpy as np

SMPLX_NUM_VERTS = 10475
SMPLX_NUM_FACES = 20908


def write_fake_smplx_npz(path, seed=0, num_verts=SMPLX_NUM_VERTS):
  """An SMPL-X model npz with the released field names, shapes and dtypes but random content.

  The joint regressor is a convex combination of ~30 vertices per joint scattered around a plausible
  joint position, so rest joints look like a body; the rest (blend shapes, skinning weights,
  landmarks) is random but shape-correct, enough for the `smplx` package to build a mesh.
  """
  from regennet_jax.body import skeleton
  rng = np.random.default_rng(seed)
  joints = skeleton.builtin_rest_joints() + rng.normal(0, 0.01, (55, 3)).astype(np.float32)
  owner = rng.integers(0, 55, num_verts)
  v_template = (joints[owner] + rng.normal(0, 0.03, (num_verts, 3))).astype(np.float32)
  regressor = np.zeros((55, num_verts), np.float32)
  for j in range(55):
    ids = np.flatnonzero(owner == j)[:30]
    w = rng.random(len(ids)) + 0.1
    regressor[j, ids] = w / w.sum()
  weights = rng.random((num_verts, 55)).astype(np.float32)**8
  weights[np.arange(num_verts), owner] += 1.0
  weights /= weights.sum(1, keepdims=True)
  kintree = np.stack([np.array(skeleton.PARENTS, np.int64) % 2**32,
                      np.arange(55)]).astype(np.uint32)
  np.savez(path,
           v_template=v_template,
           f=rng.integers(0, num_verts, (SMPLX_NUM_FACES, 3)).astype(np.int32),
           J_regressor=regressor,
           kintree_table=kintree,
           weights=weights,
           shapedirs=(rng.normal(0, 0.01, (num_verts, 3, 400))).astype(np.float32),
           posedirs=(rng.normal(0, 0.001, (num_verts, 3, 486))).astype(np.float32),
           hands_componentsl=rng.normal(0, 0.1, (45, 45)).astype(np.float32),
           hands_componentsr=rng.normal(0, 0.1, (45, 45)).astype(np.float32),
           hands_meanl=rng.normal(0, 0.1, 45).astype(np.float32),
           hands_meanr=rng.normal(0, 0.1, 45).astype(np.float32),
           lmk_faces_idx=rng.integers(0, SMPLX_NUM_FACES, 51).astype(np.int64),
           lmk_bary_coords=rng.dirichlet(np.ones(3), 51).astype(np.float32),
           dynamic_lmk_faces_idx=rng.integers(0, SMPLX_NUM_FACES, (79, 17)).astype(np.int64),
           dynamic_lmk_bary_coords=rng.dirichlet(np.ones(3), (79, 17)).astype(np.float32),
          )
  return path


# ----------------------------------------------------------------------------- dataset raw formats


def synthetic_people(seed, index, frames=None):
  """(actor, reactor) [T, 56, 3] axis-angle + translation, from the embedded generator."""
  from regennet_jax.data import synthetic
  s = synthetic.generate_sample(seed, index, min_frames=frames or 30, max_frames=frames or 40)
  return s['actor'], s['reactor']


def world_positions(person):
  """[T, 55, 3] world joints of a [T, 56, 3] person on the built-in skeleton."""
  from regennet_jax import render
  from regennet_jax.data import pipeline
  return render.world_joints(pipeline.to_model_motion(person, 0))


def write_regennet_h5(path, sequences):
  """ReGenNet processed HDF5: one float32 [T, 56, 6] dataset per key (actor 0:3 | reactor 3:6)."""
  import h5py
  with h5py.File(path, 'w') as f:
    for key, arr in sequences.items():
      f.create_dataset(key, data=arr)
  return path


# SMPL-X joint -> Kinect joint (the inverse of the converter's table), plus made-up tips and thumbs.
_SMPLX_FOR_KINECT = {
    0: 0,
    1: 6,
    20: 9,
    2: 12,
    3: 15,
    4: 16,
    5: 18,
    6: 20,
    7: 28,
    8: 17,
    9: 19,
    10: 21,
    11: 43,
    12: 1,
    13: 4,
    14: 7,
    15: 10,
    16: 2,
    17: 5,
    18: 8,
    19: 11,
    21: 28,
    22: 37,
    23: 43,
    24: 52
}


def kinect_joints(positions):
  """[T, 55, 3] SMPL-X positions -> [T, 25, 3] Kinect v2 joints."""
  return np.stack([positions[:, _SMPLX_FOR_KINECT[k]] for k in range(25)], axis=1)


def write_ntu_skeleton(path, bodies, crlf=False, truncate_at=None):
  """A Kinect v2 .skeleton text file; bodies: list of (body_id, frames present [F], joints [F, 25, 3])."""
  num_frames = max(int(f.max()) for _, f, _ in bodies) + 1
  lines = [str(num_frames)]
  for frame in range(num_frames):
    present = [(bid, j[list(f).index(frame)]) for bid, f, j in bodies if frame in set(f.tolist())]
    lines.append(str(len(present)))
    for bid, joints in present:
      lines.append(f'{bid} 0 1 1 1 1 0 -0.1 0.2 2')
      lines.append('25')
      for x, y, z in joints:
        lines.append(f'{x:.6f} {y:.6f} {z:.6f} 250.1 200.2 900.3 500.4 0.9 0.1 0.2 0.3 2')
  text = ('\r\n' if crlf else '\n').join(lines) + ('\r\n' if crlf else '\n')
  if truncate_at is not None:
    text = text[:truncate_at]
  with open(path, 'w', newline='') as f:
    f.write(text)
  return path


def write_chi3d_json(path, people):
  """CHI3D SMPL-X json for two people [2, T, 56, 3] axis-angle (+ translation row)."""
  import json
  from scipy.spatial.transform import Rotation
  people = np.asarray(people, np.float64)
  frames = people.shape[1]
  mats = Rotation.from_rotvec(people[:, :, :55].reshape(-1, 3)).as_matrix().reshape(
      2, frames, 55, 3, 3)
  data = {
      'transl': people[:, :, 55].tolist(),
      'global_orient': mats[:, :, 0:1].tolist(),
      'body_pose': mats[:, :, 1:22].tolist(),
      'jaw_pose': mats[:, :, 22:23].tolist(),
      'leye_pose': mats[:, :, 23:24].tolist(),
      'reye_pose': mats[:, :, 24:25].tolist(),
      'left_hand_pose': mats[:, :, 25:40].tolist(),
      'right_hand_pose': mats[:, :, 40:55].tolist(),
      'betas': np.zeros((2, frames, 10)).tolist(),
      'expression': np.zeros((2, frames, 10)).tolist()
  }
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'w') as f:
    json.dump(data, f)
  return path


def write_interhuman_motion(root, motion_id, positions_1, positions_2, text=None):
  """motions_processed/person{1,2}/<id>.npy as [T, 492] (62 z-up joint positions first)."""
  y_to_z = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])
  for person, pos in (('person1', positions_1), ('person2', positions_2)):
    arr = np.zeros((len(pos), 492), np.float32)
    arr[:, :66] = (pos[:, :22] @ y_to_z.T).reshape(len(pos), 66)
    folder = os.path.join(root, 'motions_processed', person)
    os.makedirs(folder, exist_ok=True)
    np.save(os.path.join(folder, f'{motion_id}.npy'), arr)
  if text is not None:
    os.makedirs(os.path.join(root, 'annots'), exist_ok=True)
    with open(os.path.join(root, 'annots', f'{motion_id}.txt'), 'w') as f:
      f.write(text)
