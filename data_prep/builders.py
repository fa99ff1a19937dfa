"""TFDS builders of the real datasets: each reads a manual download with its data_prep reader.

  python -m data_prep.build --dataset=chi3d_as --manual_dir=/downloads/chi3d_as --data_dir=/data/tfds

Builder (TFDS name)  source                                         reader
ntu120_as            ReGenNet's NTU120-AS HDF5 files                regennet_h5
chi3d_as             ReGenNet's Chi3D-AS HDF5 files                 regennet_h5
ntu120_kinect        raw NTU RGB+D 120 Kinect .skeleton files       ntu_skeleton
chi3d                raw CHI3D SMPL-X json fits                     chi3d_json
interhuman_as        raw InterHuman (motions_processed + annots)    interhuman
smplx_pairs          your own per-person SMPL-X files + pairs.csv   smplx_pairs
synthetic            generated (no download)                        regennet_jax.data.builders
"""

import argparse

from data_prep import chi3d_json
from data_prep import interhuman
from data_prep import ntu_skeleton
from data_prep import regennet_h5
from data_prep import smplx_pairs
from regennet_jax.data import builders
from regennet_jax.data import classes

REGENNET_CITATION = """@inproceedings{xu2024regennet,
  title={ReGenNet: Towards Human Action-Reaction Synthesis},
  author={Xu, Liang and Zhou, Yizhou and Yan, Yichao and Jin, Xin and Zhu, Wenhan and Rao, Fengyun
          and Yang, Xiaokang and Zeng, Wenjun},
  booktitle={CVPR},
  year={2024}
}"""
NTU_CITATION = """@article{liu2019ntu,
  title={NTU RGB+D 120: A Large-Scale Benchmark for 3D Human Activity Understanding},
  author={Liu, Jun and Shahroudy, Amir and Perez, Mauricio and Wang, Gang and Duan, Ling-Yu and
          Kot, Alex C.},
  journal={IEEE TPAMI},
  year={2020}
}"""
CHI3D_CITATION = """@inproceedings{fieraru2020three,
  title={Three-dimensional Reconstruction of Human Interactions},
  author={Fieraru, Mihai and Zanfir, Mihai and Oneata, Elisabeta and Popa, Alin-Ionut and
          Olaru, Vlad and Sminchisescu, Cristian},
  booktitle={CVPR},
  year={2020}
}"""
INTERHUMAN_CITATION = """@article{liang2024intergen,
  title={InterGen: Diffusion-based Multi-human Motion Generation under Complex Interactions},
  author={Liang, Han and Zhang, Wenqian and Li, Wenxuan and Yu, Jingyi and Xu, Lan},
  journal={IJCV},
  year={2024}
}"""

_REGENNET_H5 = """ReGenNet's processed {what} files are distributed by its authors on request (see
https://github.com/liangxuy/ReGenNet, "Data preparation"); the underlying {data} needs its own
licence ({homepage}). Put in the manual dir:
  <manual_dir>/{example}_train.h5 and <manual_dir>/{example}_test.h5  (any names containing
      'train' and 'test'; or pass --train / --test to data_prep.build)
  <manual_dir>/order_labels/<name>.mp4.txt  (optional: ReGenNet's actor/reactor labels)"""


class _SourceBuilder(builders.PairsBuilder, skip_registration=True):
  """A builder whose examples come from a data_prep reader module's `splits(args, manual_dir)`."""
  READER = None
  CLASS_NAMES = ()

  def class_names(self):
    return list(self.CLASS_NAMES)

  def reader_args(self):
    """The reader's options (argparse.Namespace): as given, or its defaults."""
    if self.source_args is None:  # the reader's own defaults, sources found in the manual dir
      parser = argparse.ArgumentParser()
      self.READER.add_source_flags(parser, default_dir='.')
      self.source_args = parser.parse_args([])
    for key, value in self.READER_SETTINGS.items():
      setattr(self.source_args, key, value)
    return self.source_args

  READER_SETTINGS = {}  # reader options every build of this dataset uses

  def source_splits(self, manual_dir):
    return self.READER.splits(self.reader_args(), manual_dir)


class Ntu120As(_SourceBuilder):
  """NTU120-AS: the 26 two-person classes of NTU RGB+D 120 (A050-A060, A106-A120) as SMPL-X
  action-reaction pairs, cross-subject split, 30 fps, in ReGenNet's processed release."""
  READER = regennet_h5
  CLASS_NAMES = classes.NTU26_NAMES
  READER_SETTINGS = {'dataset': 'ntu120'}
  FPS = 30
  HOMEPAGE = 'https://liangxuy.github.io/ReGenNet/'
  CITATION = REGENNET_CITATION + '\n' + NTU_CITATION
  MANUAL_DOWNLOAD_INSTRUCTIONS = _REGENNET_H5.format(
      what='NTU120-AS HDF5',
      data='NTU RGB+D 120',
      homepage='https://rose1.ntu.edu.sg/dataset/actionRecognition/',
      example='xsub')


class Chi3dAs(_SourceBuilder):
  """Chi3D-AS: the 8 CHI3D interaction classes as SMPL-X action-reaction pairs, 50 fps, in
  ReGenNet's processed release (random 4:1 split)."""
  READER = regennet_h5
  CLASS_NAMES = classes.CHI3D_NAMES
  READER_SETTINGS = {'dataset': 'chi3d'}
  FPS = 50
  HOMEPAGE = 'https://liangxuy.github.io/ReGenNet/'
  CITATION = REGENNET_CITATION + '\n' + CHI3D_CITATION
  MANUAL_DOWNLOAD_INSTRUCTIONS = _REGENNET_H5.format(what='Chi3D-AS HDF5',
                                                     data='CHI3D',
                                                     homepage='https://ci3d.imar.ro/',
                                                     example='chi3d_smplx')


class Ntu120Kinect(_SourceBuilder):
  """NTU RGB+D 120 two-person classes from the raw Kinect skeletons, retargeted onto the SMPL-X
  skeleton (camera 1, cross-subject split, 30 fps)."""
  READER = ntu_skeleton
  CLASS_NAMES = classes.NTU26_NAMES
  FPS = 30
  HOMEPAGE = 'https://rose1.ntu.edu.sg/dataset/actionRecognition/'
  CITATION = NTU_CITATION
  MANUAL_DOWNLOAD_INSTRUCTIONS = """Request NTU RGB+D 120 at
https://rose1.ntu.edu.sg/dataset/actionRecognition/ and download the 3D skeletons. Put in the
manual dir:
  <manual_dir>/nturgb+d_skeletons/S...C...P...R...A....skeleton  (or the .skeleton files directly)
  <manual_dir>/NTU_RGBD_samples_with_missing_skeletons.txt, NTU_RGBD120_samples_with_missing_
      skeletons.txt  (optional: the official lists of broken samples)
  <manual_dir>/order_labels/<name>.mp4.txt  (optional: ReGenNet's actor/reactor labels)"""


class Chi3d(_SourceBuilder):
  """CHI3D close-interaction SMPL-X fits from the raw json release, random 4:1 split, 50 fps."""
  READER = chi3d_json
  CLASS_NAMES = classes.CHI3D_NAMES
  FPS = 50
  HOMEPAGE = 'https://ci3d.imar.ro/'
  CITATION = CHI3D_CITATION
  MANUAL_DOWNLOAD_INSTRUCTIONS = """Request CHI3D at https://ci3d.imar.ro/ and extract it. Put in
the manual dir the release tree (searched for */smplx/*.json, e.g. train/s02/smplx/Hug 5.json), and
optionally <manual_dir>/order.json: {"<subject>/<Action n>": 0 or 1} (1 = the second person acts)."""


class InterhumanAs(_SourceBuilder):
  """InterHuman two-person motions with text, retargeted onto the SMPL-X skeleton (body joints;
  hands at rest), one class 'interaction', 30 fps."""
  READER = interhuman
  CLASS_NAMES = classes.INTERHUMAN_NAMES
  FPS = 30
  HOMEPAGE = 'https://tr3e.github.io/intergen-page/'
  CITATION = INTERHUMAN_CITATION
  MANUAL_DOWNLOAD_INSTRUCTIONS = """Request InterHuman at https://tr3e.github.io/intergen-page/
and extract it. Put in the manual dir: motions_processed/person1/<id>.npy,
motions_processed/person2/<id>.npy, annots/<id>.txt, split/{train,val,test}.txt (or
{train,val,test}.txt), optionally ignore_list.txt and order.txt (ids whose person2 acts)."""


class SmplxPairs(_SourceBuilder):
  """Your own two-person data: per-person SMPL-X files in the AMASS convention, paired, labelled
  and split by a CSV, resampled to one frame rate."""
  READER = smplx_pairs
  MANUAL_DOWNLOAD_INSTRUCTIONS = """Put in the manual dir pairs.csv (header: actor,reactor,label
and optionally split,name,text; paths relative to the CSV) and the per-person .npz files it names
(poses [T, 165], trans [T, 3], mocap_frame_rate). Options: --fps (default 30), --up_axis."""

  def class_names(self):
    args = self.reader_args()
    if not args.pairs and not self._manual_dir:
      return None  # opening a built dataset: the names come from its files
    if not getattr(args, 'class_names', None):
      self.READER.splits(args, self._manual_dir)  # reads the CSV: the classes are its labels
    return list(args.class_names)

  def fps(self):
    return self.reader_args().fps  # the metadata of a built dataset has the fps it was built at

  def __init__(self, *, manual_dir=None, **kwargs):
    self._manual_dir = manual_dir
    super().__init__(**kwargs)


BUILDERS = {
    'ntu120_as': Ntu120As,
    'chi3d_as': Chi3dAs,
    'ntu120_kinect': Ntu120Kinect,
    'chi3d': Chi3d,
    'interhuman_as': InterhumanAs,
    'smplx_pairs': SmplxPairs,
    'synthetic': builders.Synthetic,
}
