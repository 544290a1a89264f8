"""Turning Hydra's config into the typed dataclass each entry point declares."""

from __future__ import annotations

from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf

T = TypeVar("T")


def to_dataclass(cfg: DictConfig, schema: type[T]) -> T:
    """Validate ``cfg`` against the dataclass ``schema`` and return an instance of it.

    Unknown keys and wrongly typed values fail here, naming the key, rather than deep inside.
    """
    plain: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    plain.pop("hydra", None)
    merged = OmegaConf.merge(OmegaConf.structured(schema), plain)
    return OmegaConf.to_object(merged)  # type: ignore[return-value]
