"""Which parameters evolution strategies perturb: all of them (ESMA), a preset, a name pattern, a layer range.

Selection keeps ``model.named_parameters()`` order (tied weights appear once, under their first name), so a
noise stream drawn "tensor by tensor in parameter order" is well defined. For each parameter the Linear
modules that use it as their weight are recorded: the low-rank scheme perturbs matrices through them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from torch import nn

from metalight.errors import ConfigError

PRESETS: dict[str, str] = {
    "all": r".*",
    "attention": r"(self_attn|attention|attn)\.",
    "mlp": r"(mlp|feed_forward|ffn)\.",
}
_LAYER_INDEX = re.compile(r"\.(?:layers|h|blocks|layer)\.(\d+)\.")


@dataclass
class SelectedParameter:
    """A parameter chosen for perturbation: its name, the tensor, and the Linear modules using it as
    weight."""

    name: str
    param: nn.Parameter
    linears: list[nn.Linear] = field(default_factory=list, repr=False)
    tied_to_embedding: bool = False

    @property
    def is_matrix(self) -> bool:
        """Whether the low-rank scheme can perturb it: a 2-D weight used by a Linear layer and by nothing
        else (a tied input embedding / output layer is not, since the embedding lookup would miss it)."""
        return self.param.ndim == 2 and bool(self.linears) and not self.tied_to_embedding


def layer_index(name: str) -> int | None:
    """The decoder-layer index in a parameter name (``model.layers.3.mlp...`` -> 3), or ``None``."""
    match = _LAYER_INDEX.search("." + name)
    return int(match.group(1)) if match else None


def select_parameters(
    model: nn.Module, parameters: str = "all", layers: tuple[int, int] | list[int] | None = None
) -> list[SelectedParameter]:
    """Parameters whose name matches ``parameters`` (a preset: all / attention / mlp, or a regular
    expression searched in the name) and, when ``layers=[first, stop)`` is given, that belong to a decoder
    layer in that range (embeddings and final norms then fall outside). Raises ``ConfigError`` when nothing
    is selected."""
    pattern_text = PRESETS.get(parameters, parameters)
    try:
        pattern = re.compile(pattern_text)
    except re.error as err:
        raise ConfigError(
            f"parameters: {parameters!r} is neither a preset {sorted(PRESETS)} nor a valid "
            f"regular expression ({err})"
        ) from err
    if layers is not None and (len(layers) != 2 or layers[0] < 0 or layers[1] <= layers[0]):
        raise ConfigError(f"layers: {list(layers)} must be [first, stop) with 0 <= first < stop")
    linears_of: dict[int, list[nn.Linear]] = {}
    embeddings: set[int] = set()
    for module in model.modules():
        if isinstance(module, nn.Linear):
            linears_of.setdefault(id(module.weight), []).append(module)
        elif isinstance(module, nn.Embedding):
            embeddings.add(id(module.weight))
    selected = []
    for name, param in model.named_parameters():
        if not pattern.search(name):
            continue
        if layers is not None:
            index = layer_index(name)
            if index is None or not layers[0] <= index < layers[1]:
                continue
        selected.append(
            SelectedParameter(
                name, param, linears_of.get(id(param), []), tied_to_embedding=id(param) in embeddings
            )
        )
    if not selected:
        where = f" in layers [{layers[0]}, {layers[1]})" if layers is not None else ""
        raise ConfigError(
            f"parameters: {parameters!r}{where} selects no parameter of {type(model).__name__}; "
            f"use a preset ({', '.join(PRESETS)}) or a pattern matching names such as "
            f"{next(iter(dict(model.named_parameters())), '?')!r}"
        )
    return selected
