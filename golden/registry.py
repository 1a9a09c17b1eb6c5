"""Registries: a key -> object table filled by decorators where each object is defined.

Layer types, torch readers and C readers register themselves here (the QONNX / hls4ml shape: one class or
function per op, found by key), so the supported list is the registry's keys and adding a type is one place,
never a ladder of ``isinstance`` or ``elif`` over names.

A key is a string (a layer type's TOML name, a generated C layer type) or a class; :meth:`Registry.find`
walks a class's MRO, so a subclass of a registered class is read as its base unless it registers itself.
"""

from __future__ import annotations


class Registry:
    """``what``: what the entries are (for messages, e.g. "torch reader")."""

    def __init__(self, what: str):
        self.what = what
        self._entries: dict = {}

    def register(self, *keys):
        """Decorator: ``@REG.register("Conv")`` or ``@REG.register(QuantizedConv1d, QuantizedConv2d)``."""
        def add(obj):
            for key in keys:
                if key in self._entries and self._entries[key] is not obj:
                    raise ValueError(f"{self.what} {_name(key)!r} is registered twice")
                self._entries[key] = obj
            return obj
        return add

    def get(self, key):
        """The entry of ``key``, or None."""
        return self._entries.get(key)

    def find(self, cls: type):
        """The entry of ``cls`` or of its nearest registered base class, or None."""
        for base in getattr(cls, "__mro__", (cls,)):
            if base in self._entries:
                return self._entries[base]
        return None

    def names(self) -> list:
        """The registered keys' names, sorted: the supported list a message shows."""
        return sorted({_name(k) for k in self._entries})

    def __contains__(self, key) -> bool:
        return key in self._entries

    def __iter__(self):
        return iter(self._entries.items())

    def __len__(self) -> int:
        return len(self._entries)


def _name(key) -> str:
    return key if isinstance(key, str) else getattr(key, "__name__", repr(key))
