# Two commands work on a fresh machine: `make demo` and `make test`.
# Each creates .venv when missing and installs the project (torch's CPU build first).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
export SDL_VIDEODRIVER ?= offscreen
export MUJOCO_GL ?= egl

.PHONY: demo test lint pipeline record curate train-policies train-world-model train-latent-world-model train-tokenizers rank rank-wide mpc mpc-latent mpc-crashes plan-labels plan-label-training planner-risk planner-methods latent-extra-footage latent-footage dyna-latent-planner rl rl-small-footage rl-dyna rl-dyna-fresh rl-select bench clean-runs robot-pipeline record-robot train-robot-policies train-robot-world-model rank-robot rl-robot mpc-robot record-robot-unseen curate-robot train-robot-world-model-curated train-diffusion train-autoregressive post-train wfm-pipeline bench-backends guardrails synth

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install -q --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m experiments.rank_policies

test: $(STAMP) lint
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

# Reproduce everything from recording to the committed checkpoints (about 5 hours on 2 cores).
pipeline: train-policies record curate train-world-model train-latent-world-model rank

train-policies: $(STAMP)
	$(PY) -m experiments.train_policies

record: $(STAMP)
	$(PY) -m experiments.record

# Footage -> clips -> filtered, captioned, embedded, deduplicated -> shards + catalog + search.
curate: $(STAMP)
	$(PY) -m experiments.curate

# The committed driving model in three runs (about 2 h 15 min on 2 cores): a base model drawn
# in 4 rounds, then trained further twice, drawn in 8 (the chain its MODEL_CARD.md lists).
train-world-model: $(STAMP)
	$(PY) -m experiments.train_world_model run_dir=runs/world_model/driving_base export_dir=runs/world_model/driving_base/checkpoint model.decode_rounds=4
	$(PY) -m experiments.train_world_model init_checkpoint=runs/world_model/driving_base/checkpoint tokenizer_steps=0 dynamics_steps=3000
	$(PY) -m experiments.train_world_model run_dir=runs/world_model/driving_more init_checkpoint=world_models/zoo/driving tokenizer_steps=0 dynamics_steps=1500 finetune_steps=400

# Two more recordings of 3,000 episodes (other simulator seeds, the same drivers) for the latent
# world model: about 40 min on 2 cores after make record; resumable.
latent-extra-footage: $(STAMP)
	$(PY) -m experiments.record out_dir=data/footage/extra_100000 seed=100000 copy_parts=0
	$(PY) -m experiments.record out_dir=data/footage/extra_110000 seed=110000 copy_parts=0

# The latent world model MPC plans over at MLP speed, the zoo's driving_latent: make record's
# footage and the two more recordings (two thirds of every batch from those, as many as their
# episodes' share) coded by the driving model's frozen tokenizer (the committed one: see its
# MODEL_CARD.md), 3,000 steps then 6,000 more (about 35 min on 2 cores), the second run's model
# exported in float16 (the last command only exports).
LATENT_EXTRA := 'extra_footage_dirs=[data/footage/extra_100000,data/footage/extra_110000]' extra_footage_share=0.69
train-latent-world-model: latent-extra-footage
	$(PY) -m experiments.train_latent_world_model run_dir=runs/latent_more3 export_dir=runs/latent_more3/checkpoint $(LATENT_EXTRA)
	$(PY) -m experiments.train_latent_world_model run_dir=runs/latent_more3_9k export_dir=runs/latent_more3_9k/checkpoint init_checkpoint=runs/latent_more3/checkpoint steps=6000 $(LATENT_EXTRA)
	$(PY) -m experiments.train_latent_world_model run_dir=runs/latent_more3_9k export_dir=world_models/zoo/driving_latent init_checkpoint=runs/latent_more3/checkpoint steps=6000 weights_dtype=float16 $(LATENT_EXTRA)

# The tokenizer family (9 variants, two at a time on one thread each: about 35 min on 2 cores;
# dv_1x4x4 is the per-frame one a world model can code its frames with).
TOKENIZERS := cv_4x8x8 dv_4x8x8 cv_8x8x8 dv_8x8x8 cv_8x16x16 dv_8x16x16 cv_4x8x8_noncausal dv_4x8x8_noncausal dv_1x4x4
train-tokenizers: $(STAMP)
	$(MAKE) -j2 $(addprefix tokenizer-,$(TOKENIZERS))

tokenizer-%: $(STAMP)
	$(PY) -m experiments.train_tokenizer tokenizer=$*

rank: $(STAMP)
	$(PY) -m experiments.rank_policies

# The same ranking on 64 matched starts (the report's 16 first; ~25 min on 2 cores): how much
# of the report's agreement is its 16 starts' luck.
rank-wide: $(STAMP)
	$(PY) -m experiments.rank_policies episodes=64 out_dir=experiments/results/ranking64

# MPC over the world model and over the latent world model against an oracle planner and the
# best zoo policy, in the real env.
mpc: $(STAMP)
	$(PY) -m experiments.mpc_demo

# The latent planner and the oracle alone on 36 starts (the MPC demo's 12 first; ~95 min on
# 2 cores, nearly all of it the oracle's clones of the simulator): the share of the oracle's
# return with a narrower interval than 12 starts give.
mpc-latent: $(STAMP)
	$(PY) -m experiments.mpc_demo run_pixel_planner=false episodes=36 out_dir=experiments/results/mpc_latent36

# Where the latent planner crashes on 36 starts (the MPC demo's 12 first): the car it hit
# (highway-env's ground truth), how long it was in view, the model's risk for the chosen plan.
mpc-crashes: $(STAMP)
	$(PY) -m experiments.mpc_crashes

# Candidate plans of the latent planner played on clones of highway-env (96 episodes, about
# 20 min on 2 cores) and how well latent models rank them.
plan-labels: $(STAMP)
	$(PY) -m experiments.plan_labels

# Does training on plan labels help the latent planner? (about 50 min after make plan-labels)
# The zoo's driving_latent fine-tuned on its footage alone (the control) and with the plan
# labels, a second round of labels from the planner over the first tuned model, then the
# demo planner over each model on the MPC starts and 100 fresh ones.
PLAN_LABEL_TUNE := init_checkpoint=driving_latent $(LATENT_EXTRA)
plan-label-training: plan-labels
	$(PY) -m experiments.train_latent_world_model run_dir=runs/latent_pl_c export_dir=runs/latent_pl_c/checkpoint steps=1500 $(PLAN_LABEL_TUNE)
	$(PY) -m experiments.train_latent_world_model run_dir=runs/latent_pl_a export_dir=runs/latent_pl_a/checkpoint steps=1500 $(PLAN_LABEL_TUNE) 'plan_labels_dirs=[data/plan_labels/driving]'
	$(PY) -m experiments.plan_labels latent_checkpoint=runs/latent_pl_a/checkpoint labels_dir=data/plan_labels/driving_round2 episodes=32 seed=9100 'models=[runs/latent_pl_a/checkpoint]' out_dir=runs/plan_labels_round2
	$(PY) -m experiments.train_latent_world_model run_dir=runs/latent_pl_b export_dir=runs/latent_pl_b/checkpoint steps=1500 $(PLAN_LABEL_TUNE) 'plan_labels_dirs=[data/plan_labels/driving,data/plan_labels/driving_round2]'
	$(PY) -m experiments.train_latent_world_model run_dir=runs/latent_pl_d export_dir=runs/latent_pl_d/checkpoint steps=3000 plan_label_weight=4 $(PLAN_LABEL_TUNE) 'plan_labels_dirs=[data/plan_labels/driving,data/plan_labels/driving_round2]'
	$(PY) -m experiments.bench.plan_label_training

# How the latent planner trades crashes for speed: terminal values and risk aversion on 100 fresh starts.
planner-risk: $(STAMP)
	$(PY) -m experiments.bench.planner_risk

# CEM against MPPI: make mpc's planners with MPPI (~16 min), the latent planner and the oracle
# on the latent MPC run's 12 starts with MPPI (~30 min; the oracle's clones of the simulator
# take most of both), then the latent planner alone on the 100 fresh starts with each method
# (~7 min)
planner-methods: $(STAMP)
	$(PY) -m experiments.mpc_demo planner.method=mppi out_dir=experiments/results/mpc_mppi
	$(PY) -m experiments.mpc_demo run_pixel_planner=false episodes=12 planner.method=mppi out_dir=experiments/results/mpc_latent_mppi
	$(PY) -m experiments.bench.planner_methods

# Is the latent planner's model short of footage? (after train-latent-world-model, whose model it
# measures too: about 2 h 30 min on 2 cores) Two more recordings, latent models on make record's
# footage alone and on five times as much (all drawn alike), each after 3,000 steps and 6,000
# more, then the demo planner over every model.
LATENT_MORE5 := 'more_footage_dirs=[data/footage/extra_100000,data/footage/extra_110000,data/footage/extra_120000,data/footage/extra_130000]'
latent-footage: train-latent-world-model
	$(PY) -m experiments.record out_dir=data/footage/extra_120000 seed=120000 copy_parts=0
	$(PY) -m experiments.record out_dir=data/footage/extra_130000 seed=130000 copy_parts=0
	$(PY) -m experiments.train_latent_world_model run_dir=runs/latent_base export_dir=runs/latent_base/checkpoint
	$(PY) -m experiments.train_latent_world_model run_dir=runs/latent_base_9k export_dir=runs/latent_base_9k/checkpoint init_checkpoint=runs/latent_base/checkpoint steps=6000
	$(PY) -m experiments.train_latent_world_model run_dir=runs/latent_more5 export_dir=runs/latent_more5/checkpoint $(LATENT_MORE5)
	$(PY) -m experiments.train_latent_world_model run_dir=runs/latent_more5_9k export_dir=runs/latent_more5_9k/checkpoint init_checkpoint=runs/latent_more5/checkpoint steps=6000 $(LATENT_MORE5)
	$(PY) -m experiments.bench.latent_footage

# Dyna for the latent planner: a latent model on make record's footage alone (about 11 min),
# then 8 rounds of real planner episodes, fine-tuning on them and evaluation on the MPC demo's
# 12 starts (about 6 min a round on 2 cores), the last round exported to runs/ (it was the zoo's
# driving_latent until a model on more footage replaced it).
dyna-latent-planner: $(STAMP)
	$(PY) -m experiments.train_latent_world_model export_dir=runs/latent_world_model/driving/base weights_dtype=float16
	$(PY) -m experiments.dyna_latent_planner export_dir=runs/dyna_latent_planner/export

# RL in the world model (PPO, DQN), in the real env, and real training started from the world model;
# both PPO runs again with PPO seeds 1 and 2; then what each constant action returns on the same
# real evaluation starts.
rl: $(STAMP)
	$(PY) -m experiments.train_rl env=wfm algorithm=ppo
	$(PY) -m experiments.train_rl env=wfm algorithm=dqn
	$(PY) -m experiments.train_rl env=real
	$(PY) -m experiments.train_rl env=real init=wfm_policy
	$(PY) -m experiments.train_rl env=real init=wfm_encoder
	$(MAKE) $(addprefix rl-seed-,$(RL_SEEDS))
	$(PY) -m experiments.bench.rl_constant_actions

# The two PPO runs of `make rl` (real env, world model) again with another PPO seed.
RL_SEEDS := 1 2
rl-seed-%: $(STAMP)
	$(PY) -m experiments.train_rl env=real seed=$* out_dir=experiments/results/rl_seeds/seed_$* log_dir=runs/rl_seeds/seed_$*
	$(PY) -m experiments.train_rl env=wfm seed=$* out_dir=experiments/results/rl_seeds/seed_$* log_dir=runs/rl_seeds/seed_$*

# RL with a tenth of the real PPO run's interactions: a world model trained from scratch on the
# first 110 footage episodes (1,985 frames; ~35 min on 2 cores), trained on (~15 min) with a
# third of each batch from windows that hold a crash and its heads fitted to its own imagined
# episodes, then PPO in it (~5 min), evaluated in the real env.
rl-small-footage: $(STAMP)
	$(PY) -m experiments.record episodes=110 episodes_per_part=16 seed=0 'copies=[]' copy_parts=0 out_dir=data/footage/driving_small
	$(PY) -m experiments.train_world_model run_dir=runs/world_model/driving_small export_dir=runs/world_model/driving_small/checkpoint footage_dir=data/footage/driving_small tokenizer_steps=1500 dynamics_steps=3000 finetune_steps=400
	$(PY) -m experiments.train_world_model run_dir=runs/world_model/driving_small_crash export_dir=runs/world_model/driving_small_crash/checkpoint footage_dir=data/footage/driving_small init_checkpoint=runs/world_model/driving_small/checkpoint tokenizer_steps=0 dynamics_steps=1000 finetune_steps=200 crash_window_share=0.3 imagined_head_steps=500
	$(PY) -m experiments.train_rl env=wfm checkpoint=runs/world_model/driving_small_crash/checkpoint out_dir=experiments/results/rl_small_footage log_dir=runs/rl_small_footage

# Dyna inside a 2,000-frame budget (10% of the real PPO run's steps): a world model from the
# first 80 footage episodes (trained as rl-small-footage's, about 55 min; made once, kept in
# runs/dyna_rl), then rounds of PPO in it, 8 real episodes of the policy recorded, the model
# trained on, PPO continued; the loop runs for PPO seeds 0, 1 and 2 (about 3.5 hours).
DYNA_BASE := runs/dyna_rl/base_crash/checkpoint/training.json
$(DYNA_BASE): | $(STAMP)
	$(PY) -m experiments.record episodes=80 episodes_per_part=16 seed=0 'copies=[]' copy_parts=0 out_dir=data/footage/dyna_rl/seed
	$(PY) -m experiments.train_world_model run_dir=runs/dyna_rl/base export_dir=runs/dyna_rl/base/checkpoint footage_dir=data/footage/dyna_rl/seed tokenizer_steps=1500 dynamics_steps=3000 finetune_steps=400
	$(PY) -m experiments.train_world_model run_dir=runs/dyna_rl/base_crash export_dir=runs/dyna_rl/base_crash/checkpoint footage_dir=data/footage/dyna_rl/seed init_checkpoint=runs/dyna_rl/base/checkpoint tokenizer_steps=0 dynamics_steps=1000 finetune_steps=200 crash_window_share=0.3 imagined_head_steps=500

rl-dyna: $(DYNA_BASE)
	$(PY) -m experiments.dyna_rl

# The same loop from the same model for PPO seed 2, whose policy stayed at FASTER there, but
# with PPO started afresh in each round's model (the previous round's policy only drives the
# round's real episodes; about an hour), then each constant action rated in its models (7 min).
rl-dyna-fresh: $(DYNA_BASE)
	$(PY) -m experiments.dyna_rl policy_each_round=fresh rl.seed=2 'seeds=[]' footage_dir=data/footage/dyna_rl_fresh/seed_2 run_dir=runs/dyna_rl_fresh/seed_2 out_dir=experiments/results/rl_dyna_fresh rl.log_dir=runs/dyna_rl_fresh/tensorboard/seed_2
	$(PY) -m experiments.bench.dyna_imagined_actions --dyna experiments/results/rl_dyna_fresh

# PPO seeds 0-8 in the Dyna loop's starting model, three candidates to each of three
# selections; each candidate drives 4 real episodes (counted in the 2,000-frame budget) and
# the best on them is kept, then measured on the real evaluation starts (about 65 min).
rl-select: $(DYNA_BASE)
	$(PY) -m experiments.rl_select

# The robot (MuJoCo Pusher) through the same recorder, trainer, env and ranking: configs only.
robot-pipeline: record-robot train-robot-policies train-robot-world-model rank-robot mpc-robot rl-robot

record-robot: $(STAMP)
	$(PY) -m experiments.record --config-name record_robot
	$(PY) -m experiments.record --config-name record_robot_camera

# 24 new Pusher episodes (another seed) that no robot model trains on: the raw-footage and the
# curated-shards models are compared on them.
record-robot-unseen: $(STAMP)
	$(PY) -m experiments.record --config-name record_robot seed=1 episodes=24 out_dir=data/footage/robot_unseen

# The robot footage through the curation, and a robot world model trained on its shards.
curate-robot: $(STAMP)
	$(PY) -m experiments.curate --config-name curate_robot

train-robot-world-model-curated: $(STAMP)
	$(PY) -m experiments.train_world_model --config-name train_world_model_robot shards_dir=data/curated/robot/shards run_dir=runs/world_model/robot_curated export_dir=runs/world_model/robot_curated/checkpoint

train-robot-policies: $(STAMP)
	$(PY) -m experiments.train_robot_policies

train-robot-world-model: $(STAMP)
	$(PY) -m experiments.train_world_model --config-name train_world_model_robot
	$(PY) -m experiments.train_world_model --config-name train_world_model_robot_camera

rank-robot: $(STAMP)
	$(PY) -m experiments.rank_policies --config-name rank_policies_robot

bench: $(STAMP)
	$(PY) -m experiments.bench.world_model_quality
	$(PY) -m experiments.bench.world_model_quality --checkpoint robot --footage data/footage/robot --name world_model_quality_robot
	$(PY) -m experiments.bench.camera_control
	$(PY) -m experiments.bench.env_speed
	$(PY) -m experiments.bench.shot_boundaries
	$(PY) -m experiments.bench.curation_run
	$(PY) -m experiments.bench.dedup_planted
	$(PY) -m experiments.bench.dedup_scale
	$(PY) -m experiments.bench.search_speed
	$(PY) -m experiments.bench.text_retrieval
	$(PY) -m experiments.bench.tokenizer_quality
	$(PY) -m experiments.bench.tokenizer_speed
	$(PY) -m experiments.bench.summarize

# PPO in WFM-Robot-v0 (learned reward) and in the real Pusher, both evaluated in the real Pusher.
rl-robot: $(STAMP)
	$(PY) -m experiments.train_rl --config-name train_rl_robot env=wfm
	$(PY) -m experiments.train_rl --config-name train_rl_robot env=real

# MPC over the robot world model against an oracle on clones of the real MuJoCo physics.
mpc-robot: $(STAMP)
	$(PY) -m experiments.mpc_demo --config-name mpc_demo_robot

# The diffusion WFM (EDM, DiT-style) over cv_4x8x8 tokenizer latents: Text2World, then Video2World.
train-diffusion: $(STAMP)
	$(PY) -m experiments.train_diffusion

# The autoregressive WFM (GPT over dv_4x8x8 FSQ tokens): next-token pre-training, then
# text-conditioned Video2World through cross-attention.
train-autoregressive: $(STAMP)
	$(PY) -m experiments.train_autoregressive

# Action post-training of both pre-trained WFMs, and of the same networks from scratch on the
# same data (what pre-training buys): the backends of gym.make("WFM-Driving-v0", backend=...).
post-train: $(STAMP)
	$(PY) -m experiments.post_train
	$(PY) -m experiments.post_train init=scratch run_dir=runs/post_train/driving_diffusion_scratch
	$(PY) -m experiments.post_train --config-name post_train_autoregressive
	$(PY) -m experiments.post_train --config-name post_train_autoregressive init=scratch run_dir=runs/post_train/driving_autoregressive_scratch

# The WFM backends from footage (after `make record curate`): the two tokenizers they read,
# pre-training, post-training, then the side-by-side measurement (frames drawn as the env
# draws them, and most likely frames), the ranking on each and the synthetic-data yield.
wfm-pipeline: tokenizer-cv_4x8x8 tokenizer-dv_4x8x8 train-diffusion train-autoregressive post-train bench-backends

bench-backends: $(STAMP)
	$(PY) -m experiments.bench.wfm_backends
	$(PY) -m experiments.bench.wfm_backends --draws greedy
	$(PY) -m experiments.bench.synthetic_yield
	$(PY) -m experiments.rank_policies backend=diffusion end_reading=drawn out_dir=experiments/results/ranking_diffusion
	$(PY) -m experiments.rank_policies backend=autoregressive end_reading=drawn out_dir=experiments/results/ranking_autoregressive
	$(PY) -m experiments.bench.summarize

# Guardrails: retrain the prompt classifier (deterministic) and re-calibrate the video guard
# on the driving footage (needed after the driving world model's tokenizer is retrained).
guardrails: $(STAMP)
	$(PY) -m wfm_sim.guardrail train-prompt-classifier
	$(PY) -m wfm_sim.guardrail calibrate-video-guard

# Synthetic footage from the driving world model and the zoo, through the guardrails.
synth: $(STAMP)
	$(PY) -m experiments.synthesize generator=world_model n_clips=48 out_dir=data/synthetic/world_model
