"""Data-parallel training: two torchrun CPU processes train the weights one process trains.

Each trainer runs 3 steps once in this process and once as ``torchrun --nproc_per_node=2``
(gloo) on the same global batches; the trained weights must agree.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file

from experiments.config import to_dataclass
from tests.training.torchrun import RELATIVE_GAP, relative_gap, run_torchrun
from wfm_sim.data import read_episodes
from wfm_sim.data.shards import ShardSample, shard_group, write_shard
from wfm_sim.distributed import Distributed, distributed, is_main_process, launched_by_torchrun
from wfm_sim.tokenizer import VideoTokenizer, VideoTokenizerConfig
from wfm_sim.tokenizer.losses import PatchDiscriminator
from wfm_sim.tokenizer.training import TokenizerTrainConfig, train_tokenizer
from wfm_sim.training import TrainConfig, train_world_model
from wfm_sim.video import write_mp4
from world_models import WorldModel

WORKER = Path(__file__).with_name("ddp_worker.py")


@pytest.fixture(scope="module")
def episode_shards(tiny_footage: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny footage's 6 episodes as 64x64 shard clips, for the tokenizer trainer."""
    root = tmp_path_factory.mktemp("shards")
    samples = []
    for episode in read_episodes(tiny_footage):
        mp4 = root / f"episode{episode.episode_id}.mp4"
        write_mp4(mp4, episode.frames)
        samples.append(ShardSample(mp4.stem, mp4.read_bytes(), b"", {}))
        mp4.unlink()
    write_shard(root / shard_group(64, 64) / "shard-00000.tar", samples)
    return root


def _configs(
    run_dir: Path, make_train_config: Callable[..., TrainConfig], shards: Path
) -> tuple[TrainConfig, TokenizerTrainConfig]:
    """3-step runs of both trainers (global batches 8/4 and 4: 4/2 and 2 per rank), with a
    mid-run checkpoint and the critic switched on after the first step."""
    world_model = make_train_config(
        run_dir / "world_model", tokenizer_steps=3, dynamics_steps=3, finetune_steps=3
    )
    tokenizer = TokenizerTrainConfig(
        shards_dir=str(shards),
        run_dir=str(run_dir / "tokenizer"),
        held_out_fraction=0.34,
        steps=3,
        batch=4,
        clip_frames=5,
        checkpoint_every=2,
        eval_every=2,
        adversarial_weight=0.1,
        adversarial_start=1,
        # bf16 rounds each activation to 8 significant bits, so a last-bit difference in a sum
        # can become a 0.4% one; fp32 keeps the comparison to summation order alone.
        bf16=False,
        tokenizer=VideoTokenizerConfig(kind="discrete", width=8),
    )
    return world_model, tokenizer


def _write_config(config: object, path: Path) -> Path:
    """``config`` as JSON at ``path``, checked to read back as the same dataclass."""
    payload = dataclasses.asdict(config)  # type: ignore[call-overload]
    assert to_dataclass(OmegaConf.create(payload), type(config)) == config
    path.write_text(json.dumps(payload))
    return path


@dataclasses.dataclass
class _Runs:
    """Both trainers run once in this process and once by two torchrun processes."""

    single: Path
    parallel: Path
    world_model: TrainConfig
    tokenizer: TokenizerTrainConfig
    torchrun: subprocess.CompletedProcess[str]

    def check_finished(self, trainer: str) -> None:
        """Fail with the processes' own error unless ``trainer``'s two-process run exported."""
        if not (self.parallel / trainer / "checkpoint" / "training.json").exists():
            pytest.fail(f"the torchrun {trainer} run failed:\n{self.torchrun.stderr[-4000:]}")


@pytest.fixture(scope="module")
def runs(
    tmp_path_factory: pytest.TempPathFactory,
    make_train_config: Callable[..., TrainConfig],
    episode_shards: Path,
) -> _Runs:
    """Both trainers' 3-step runs, in one process and in two."""
    single_dir = tmp_path_factory.mktemp("single")
    parallel_dir = tmp_path_factory.mktemp("parallel")
    configs = _configs(single_dir, make_train_config, episode_shards)
    train_world_model(configs[0])
    train_tokenizer(configs[1])

    world_model, tokenizer = _configs(parallel_dir, make_train_config, episode_shards)
    result = run_torchrun(
        str(WORKER),
        str(_write_config(world_model, parallel_dir / "world_model.json")),
        str(_write_config(tokenizer, parallel_dir / "tokenizer.json")),
    )
    return _Runs(single_dir, parallel_dir, *configs, torchrun=result)


def test_world_model_trained_by_two_processes_matches_one(runs: _Runs) -> None:
    runs.check_finished("world_model")
    single, parallel = runs.single / "world_model", runs.parallel / "world_model"
    torch.manual_seed(runs.world_model.seed)  # as the trainer draws its initial weights
    init = WorldModel(runs.world_model.model).state_dict()
    weights = "checkpoint/model.safetensors"
    gap = relative_gap(load_file(str(single / weights)), load_file(str(parallel / weights)), init)
    assert gap < RELATIVE_GAP, gap

    # rank 0 alone wrote the logs and the export, and says how many processes trained
    for stage in ("tokenizer", "dynamics", "rollout_finetune"):
        assert len(list((parallel / "tb" / stage).glob("events.out.tfevents.*"))) == 1, stage
    report = json.loads((parallel / "checkpoint" / "training.json").read_text())
    assert report["processes"] == 2
    assert json.loads((single / "checkpoint" / "training.json").read_text())["processes"] == 1


def test_tokenizer_trained_by_two_processes_matches_one(runs: _Runs) -> None:
    runs.check_finished("tokenizer")
    assert runs.torchrun.returncode == 0, runs.torchrun.stderr[-4000:]
    single, parallel = runs.single / "tokenizer", runs.parallel / "tokenizer"
    with torch.random.fork_rng():  # as the trainer draws its initial weights
        torch.manual_seed(runs.tokenizer.seed)
        modules = {
            "tokenizer": VideoTokenizer(runs.tokenizer.tokenizer),
            "discriminator": PatchDiscriminator(),
        }
    init = {
        f"model.{m}.{k}": v for m, module in modules.items() for k, v in module.state_dict().items()
    }
    # the saved state holds the critic too: it must have trained identically
    state = "state.safetensors"
    gap = relative_gap(load_file(str(single / state)), load_file(str(parallel / state)), init)
    assert gap < RELATIVE_GAP, gap
    assert len(list((parallel / "tb").glob("events.out.tfevents.*"))) == 1
    assert json.loads((parallel / "checkpoint" / "training.json").read_text())["processes"] == 2


def test_a_rank_takes_its_equal_slice_of_the_global_batch() -> None:
    second = Distributed(rank=1, local_rank=1, world_size=2, device=torch.device("cpu"))
    np.testing.assert_array_equal(second.shard(np.arange(6)), [3, 4, 5])
    assert torch.equal(second.shard(torch.arange(4)), torch.tensor([2, 3]))
    with pytest.raises(ValueError, match="multiple of 2"):
        second.shard(np.arange(5))


def test_one_process_without_torchrun_joins_no_group() -> None:
    assert not launched_by_torchrun()
    module = torch.nn.Linear(2, 2)
    dist = distributed("cpu")
    assert (dist.rank, dist.world_size, dist.is_main, dist.device) == (
        0,
        1,
        True,
        module.weight.device,
    )
    assert not torch.distributed.is_initialized()
    assert dist.wrap(module) is module
    logged = dist.all_reduce_mean({"loss": torch.tensor(0.25, requires_grad=True), "n": 3})
    assert logged == {"loss": 0.25, "n": 3.0}
    count = torch.tensor(5.0)
    total = dist.all_reduce_sum(count)
    assert total == count and total is not count


def test_torchrun_and_rank_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"RANK": "1", "WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(name, value)
    assert not launched_by_torchrun()  # LOCAL_RANK is still missing
    assert not is_main_process()
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert launched_by_torchrun()
    monkeypatch.setenv("RANK", "0")
    assert is_main_process()
