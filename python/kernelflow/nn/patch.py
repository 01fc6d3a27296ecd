"""patch(model): swap torch.nn.LayerNorm / torch.nn.RMSNorm submodules for kernelflow's in place."""

from __future__ import annotations

from torch import nn

from kernelflow._backend import _check_name
from kernelflow.nn.norm import LayerNorm, RMSNorm

# exact torch classes only: a user subclass may override forward, so it is left alone
_REPLACEMENTS = {nn.LayerNorm: LayerNorm, nn.RMSNorm: RMSNorm}


def patch(model: nn.Module, backend: str = "auto") -> list[tuple[str, str]]:
    """Make every torch.nn.LayerNorm / torch.nn.RMSNorm in ``model`` (the model itself included)
    a kernelflow module, in place: the module object, its parameter tensors, hooks and state_dict
    keys stay the same, only its class (hence forward) changes. Returns [(qualified_name,
    original_class_name)] of the replaced modules; "" names the model itself."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    backend = _check_name(backend)
    replaced = []
    for name, mod in model.named_modules():  # each shared module is visited once
        new_cls = _REPLACEMENTS.get(type(mod))
        if new_cls is None:
            continue
        original = type(mod).__name__
        mod.__class__ = new_cls  # the kernelflow classes add only the ``backend`` attribute
        mod.backend = backend
        replaced.append((name, original))
    return replaced
