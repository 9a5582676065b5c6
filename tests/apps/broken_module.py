"""An app module that fails on import."""

raise RuntimeError("this module is broken on purpose")
