"""Causal video tokenizers: continuous (CV, for diffusion) and FSQ-discrete (DV, for
autoregressive models) at several temporal x spatial compression ratios.

    tokenizer = load_tokenizer("runs/tokenizer/dv_4x8x8/checkpoint")
    tokens = tokenizer.encode_indices(video)          # (B, T, 64, 64, 3) uint8 -> (B, t, 8, 8)
    video = tokenizer.decode_indices(tokens, num_frames=T)
    latents = encode_video(tokenizer, frames, chunk_frames=16)   # any length, bounded memory
"""

from wfm_sim.tokenizer.checkpoint import load_tokenizer, save_tokenizer
from wfm_sim.tokenizer.config import VideoTokenizerConfig
from wfm_sim.tokenizer.fsq import FSQ
from wfm_sim.tokenizer.network import VideoTokenizer
from wfm_sim.tokenizer.streaming import decode_video, encode_video

__all__ = [
    "FSQ",
    "VideoTokenizer",
    "VideoTokenizerConfig",
    "decode_video",
    "encode_video",
    "load_tokenizer",
    "save_tokenizer",
]
