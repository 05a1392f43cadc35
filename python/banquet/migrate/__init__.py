"""Migration from Feast: its registry (file ``registry.db`` or SQL tables) read from the
protobuf bytes Feast stores and recorded as banquet's registry (feast_registry.py, with the
wire reader protowire.py); ``banquet migrate-from-feast`` and the file registry use it."""

from banquet.migrate.feast_registry import blobs_from_file, is_feast_registry, states

__all__ = ["blobs_from_file", "is_feast_registry", "states"]
