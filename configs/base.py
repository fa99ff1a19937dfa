"""The paper's settings (ReGenNet, CVPR 2024); dataset configs override the few that differ.

Every field can be overridden on the command line: --config.train.batch_size=16.
"""

import ml_collections


def get_config():
  c = ml_collections.ConfigDict()
  c.seed = 0

  c.data = ml_collections.ConfigDict()
  c.data.name = ''  # 'synthetic' or a dataset built by python -m data_prep.build (chi3d_as, ...)
  c.data.dir = ''  # the TFDS data dir datasets are read from (synthetic: built there on first use;
  # default ~/.cache/regennet_jax/datasets or $REGENNET_JAX_DATA_DIR)
  c.data.path = ''  # or one dataset directory (a data_prep converter's --out); overrides name/dir
  c.data.seed = 0  # synthetic data only
  c.data.synthetic_train_size = 512
  c.data.synthetic_test_size = 128
  c.data.synthetic_min_frames = 50
  c.data.synthetic_max_frames = 80
  c.data.num_frames = 60  # window length
  c.data.crop = 'random'
  c.data.start_prob = 0.0  # share of random-crop windows that start at frame 0 anyway
  c.data.swap_prob = 0.0  # >0: the paper's 'Random' actor/reactor ablation (Table 8)
  c.data.num_threads = 2
  c.data.prefetch = 4
  c.data.fps = 30

  c.model = ml_collections.ConfigDict()
  c.model.arch = 'online'  # 'online' (causal decoder, the paper's) or 'offline' (Table 9)
  c.model.num_layers = 8
  c.model.latent_dim = 512
  c.model.ff_size = 1024
  c.model.num_heads = 4
  c.model.dropout = 0.1
  c.model.fusion = 'concat'  # or 'add' (ablation)
  # The sinusoidal frame-position encoding added to every token (the paper's).
  c.model.use_pos_emb = True
  # 'x0': the network outputs x0 (the paper's); 'preconditioned': x0 mixes x_t and the network's
  # output by the noise level against sigma_data, the data's spread per feature (model.py).
  c.model.prediction = 'x0'
  c.model.sigma_data = 0.1
  # x0 about 'zero' (the paper's; EDM's) or about the training reactors' mean ('data', which
  # training computes into model.reactor_mean and saves with the run; with 'x0' the network
  # outputs the deviation from it in units of sigma_data).
  c.model.center = 'zero'
  c.model.reactor_mean = ()
  c.model.cond_mode = 'no_cond'  # 'no_cond' (unconstrained, the paper's main setting) or 'action'
  c.model.cond_mask_prob = 0.0  # >0 with cond_mode='action' enables classifier-free guidance
  c.model.dtype = 'float32'  # 'bfloat16' for faster steps on TPU/GPU
  # Operands of the Transformer layers' matrix multiplies in training, forward and backward
  # (accumulation is always float32; regennet_jax/matmul.py): 'bfloat16' makes the NTU-size step
  # 1.4-1.7x faster on a CPU with AMX (README, Speed), as TPUs do for float32 by default.
  c.model.matmul_dtype = 'float32'
  # True: the network sees both people in the actor's first-frame heading frame (rotated about the
  # vertical so the actor faces +z); samples are turned back to the world. False: the original's
  # world orientation. See regennet_jax/pair_frame.py.
  c.model.actor_frame = False
  # True: the actor's joint positions (forward kinematics) are a second input next to its
  # rotations (not in the paper).
  c.model.actor_positions = False

  c.diffusion = ml_collections.ConfigDict()
  c.diffusion.noise_schedule = 'cosine'
  c.diffusion.num_timesteps = 1000
  # Noise levels training draws from: '' all num_timesteps (the paper's); a respacing such as
  # 'ddim5' only the steps that chain keeps, which is all a sampler on that chain ever asks for.
  c.diffusion.train_respacing = ''
  # Correlation of the diffusion noise between consecutive frames (causal AR(1), see
  # diffusion.correlate_frames); 0 is white noise, the paper's.
  c.diffusion.noise_correlation = 0.0

  c.losses = ml_collections.ConfigDict()
  c.losses.orient = 1.0
  c.losses.body = 1.0
  c.losses.transl = 1.0
  c.losses.rcxyz = 0.0
  c.losses.world_joints = 0.0  # reactor joint positions with translation (not in the paper)
  c.losses.world_vel = 0.0  # their velocities: against jitter (not in the paper)
  c.losses.vel = 0.0
  c.losses.fc = 0.0
  c.losses.fc_threshold = 0.03
  c.losses.normalization = 'code'  # 'code' (/T^2, as released) or 'paper' (/T)
  c.losses.min_snr_gamma = 0.0  # > 0: weight step t's loss by min(SNR_t, gamma) (not in the paper)

  c.body = ml_collections.ConfigDict()
  c.body.smplx_model_path = ''  # SMPLX_NEUTRAL.npz; empty: the built-in skeleton
  c.body.betas = ()

  c.train = ml_collections.ConfigDict()
  c.train.batch_size = 64  # global, over all devices and hosts
  c.train.num_steps = 500_000
  c.train.learning_rate = 1e-4
  c.train.lr_schedule = 'constant'  # 'constant' (the paper's) or 'cosine' (warm-up, then decay)
  c.train.warmup_steps = 0  # 'cosine': linear warm-up steps
  c.train.final_lr_fraction = 0.0  # 'cosine': learning rate at num_steps, as a fraction of the peak
  c.train.weight_decay = 0.0
  c.train.grad_clip = 0.0  # 0: off, as the paper
  c.train.ema_decay = 0.0  # 0: no EMA, as the paper; >0: sampling and eval use the average
  c.train.ema_warmup = True  # decay min(ema_decay, (1+step)/(10+step)): useful from early on
  c.train.log_every = 1000
  # Every N steps (and at the end) score test reactions: per-class interaction metrics, and FID /
  # accuracy once a recognizer is trained (--mode=train_recognizer). 0: off.
  c.train.eval_every = 0
  c.train.checkpoint_every = 10_000
  c.train.keep_checkpoints = 3
  # After training: sample every test actor, score it per class, render GIFs and a contact sheet
  # (report.md). False for sweeps and tests that only need the checkpoints.
  c.train.report = True
  c.train.model_parallel = 1  # size of the 'model' mesh axis (>1 splits wide kernels)

  c.sample = ml_collections.ConfigDict()
  c.sample.respacing = 'ddim5'
  c.sample.method = 'ddim'  # 'ddim' (eta=0) or 'ddpm' (ancestral, what the original's eval ran)
  c.sample.eta = 0.0
  c.sample.guidance_scale = 2.5  # used only with cond_mode='action' and cond_mask_prob > 0
  # The same for sampling, streaming and evaluation: 'bfloat16' samples ~1.6x faster on CPUs with
  # AVX512-BF16 (what TPUs do for float32 matmuls by default) and moves FID slightly (README);
  # 'float32' reproduces the PyTorch arithmetic.
  c.sample.matmul_dtype = 'float32'
  # True: samples are projected onto valid rotations (unit, orthogonal rot6d rows; zero padding
  # channels) before they are saved or scored. False: raw network output, as the released code
  # feeds its evaluator.
  c.sample.orthonormalize = False
  c.sample.chunk_size = 0  # reactions per denoiser pass; 0: 16 on CPU (cache-sized), all on TPU/GPU
  c.sample.num_render = 4  # reactions rendered to GIF after training
  c.sample.batch_size = 64
  c.sample.num_samples = 256  # test actors sampled by --mode=sample
  c.sample.num_repetitions = 1  # reactions per actor in --mode=sample (K > 1: [N, K, T, 56, 6])

  c.recognizer = ml_collections.ConfigDict()  # the ST-GCN evaluator (--mode=train_recognizer)
  c.recognizer.batch_size = 64
  c.recognizer.width = 1.0  # channel multiplier of the ST-GCN (1.0: the paper's evaluator)
  c.recognizer.num_steps = 20_000
  c.recognizer.learning_rate = 1e-4
  c.recognizer.weight_decay = 0.0

  c.eval = ml_collections.ConfigDict()  # --mode=eval, the paper's protocol
  c.eval.recognizer_dir = ''  # default: <workdir>/recognizer
  c.eval.num_seeds = 20
  c.eval.num_samples = 1000  # actors per split and seed
  # True: score as many sequences as the released code's batching does (Chi3D test: 40 of 74,
  # train: 232; NTU unchanged). False: min(num_samples, split size).
  c.eval.original_sample_counts = False
  c.eval.batch_size = 64
  c.eval.respacing = 'ddim5'
  c.eval.method = 'ddpm'  # what the original's evaluation ran (5 ancestral steps on ddim5)
  c.eval.diversity_pairs = 200
  c.eval.multimodality_pairs = 20
  c.eval.kid_subsets = 100
  c.eval.kid_subset_size = 1000

  # A one-step student (regennet_jax/distill.py): trained to reproduce in ONE denoiser pass what a
  # trained run's deterministic DDIM chain makes from the same noise. It starts from that run's
  # weights and samples with respacing 'trailing1', DDIM and no guidance (set for it). Easiest
  # through configs/distill.py:<teacher run>, which takes the teacher's own settings.
  c.distill = ml_collections.ConfigDict()
  c.distill.teacher = ''  # the teacher's run directory (its --workdir); '' trains a diffusion model
  c.distill.teacher_respacing = 'ddim5'  # the teacher's chain (DDIM, eta 0)
  c.distill.guidance_scale = 2.5  # the teacher's classifier-free guidance, if its model has one

  c.stream = ml_collections.ConfigDict()
  c.stream.batch_size = 1  # simultaneous streams in --mode=stream
  c.stream.max_frames = 300  # KV-cache length: the longest stream
  # What one token's products and attention run on: 'native' (regennet_jax/native: hand-written
  # CPU kernels built with the machine's C++ compiler on first use, ~2x XLA:CPU's speed for one
  # stream), 'xla', or 'auto': native where they build and the streams stay on one device.
  c.stream.kernels = 'auto'
  return c
