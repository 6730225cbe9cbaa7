"""Names of registered components, per kind (what a YAML `type:` may name)."""
from __future__ import annotations

from . import _C


class _Registry:
    def kinds(self) -> list[str]:
        """Every kind of extensible component (experiment, dataset, featurizer, ...)."""
        return list(_C.registry_kinds())

    def names(self, kind: str) -> list[str]:
        """Registered names of `kind`; ValueError listing the kinds if `kind` is unknown."""
        try:
            return list(_C.registry_names(kind))
        except Exception as e:  # std::invalid_argument arrives as ValueError
            raise ValueError(str(e)) from None


registry = _Registry()
