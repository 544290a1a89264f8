"""Headless rendering defaults, set before pygame or MuJoCo load.

highway-env draws with pygame-ce: under ``SDL_VIDEODRIVER=dummy`` its frames come back all
black, so ``dummy`` is replaced by ``offscreen``. MuJoCo renders on the CPU through Mesa's EGL.
"""

from __future__ import annotations

import os
import warnings


def configure_headless_rendering() -> None:
    """Point SDL and MuJoCo at off-screen back ends unless the user chose working ones."""
    if os.environ.get("SDL_VIDEODRIVER", "offscreen") == "dummy":
        warnings.warn(
            "SDL_VIDEODRIVER=dummy renders highway-env frames all black; using 'offscreen'",
            stacklevel=2,
        )
        os.environ["SDL_VIDEODRIVER"] = "offscreen"
    os.environ.setdefault("SDL_VIDEODRIVER", "offscreen")
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    # Milvus Lite talks gRPC in-process; gRPC's fork handlers break the ffmpeg subprocesses
    # started afterwards ("epoll_wait error: Bad file descriptor" in the child, decode fails).
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
