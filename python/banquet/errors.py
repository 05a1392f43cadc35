"""Every error banquet raises on purpose.

All derive from :class:`BanquetError`; each also derives from the built-in exception that fits
(``KeyError`` for lookups, ``ValueError`` for bad input, ``FileNotFoundError`` ...), so code
written against plain Python exceptions keeps working. Messages say what was wrong and how to
fix it.
"""

from __future__ import annotations


class BanquetError(Exception):
    """Root of every error raised by banquet."""

    def __str__(self) -> str:  # KeyError would otherwise print the message in quotes
        return str(self.args[0]) if self.args else self.__class__.__name__


# --- configuration and definitions -------------------------------------------------------


class ConfigError(BanquetError, ValueError):
    """``feature_store.yaml`` is missing, malformed or holds an invalid value."""


class DefinitionError(BanquetError, ValueError):
    """A feature definition (entity, view, source, service) is invalid."""


class DuplicateNameError(DefinitionError):
    """Two objects of one kind share a name."""


class DefinitionTypeError(DefinitionError, TypeError):
    """A definition was given an object of the wrong kind (``Array("int64")``, a type with no
    banquet equivalent, something that is not a definition passed to ``apply``)."""


class InvalidArgument(BanquetError, ValueError):
    """An argument of a ``FeatureStore`` call is invalid (a materialization window whose start
    is after its end, a feature view that is not online); the message names it."""


class RepoError(BanquetError):
    """A feature repository could not be loaded (a definition file failed to import)."""


# --- registry ----------------------------------------------------------------------------


class RegistryError(BanquetError):
    """The registry could not be read or written."""


class RegistryConflict(RegistryError):
    """Another process is changing the same project and this one could not wait for it (lock
    timeout, deadlock); nothing was changed: re-run the apply when the other one is done."""


class RegistryUnavailable(RegistryError, ConnectionError):
    """The registry's database server cannot be reached; the operation can be retried."""


class RegistryCorrupt(RegistryError):
    """The registry file exists but cannot be parsed."""


class NotFoundError(BanquetError, KeyError):
    """A named object does not exist."""


class EntityNotFound(NotFoundError):
    pass


class FeatureViewNotFound(NotFoundError):
    pass


class FeatureServiceNotFound(NotFoundError):
    pass


class DataSourceNotFound(NotFoundError):
    pass


class InvalidFeatureRef(BanquetError, ValueError):
    """A feature reference is not of the form ``"view:feature"``."""


class FeatureNotFound(NotFoundError):
    """A feature reference names a view that exists but a feature it does not have."""


# --- data --------------------------------------------------------------------------------


class EntityDataError(BanquetError, ValueError):
    """The entity rows passed to a retrieval are unusable (missing key, no timestamp, ...)."""


class MissingJoinKeyError(EntityDataError):
    pass


class TimestampColumnError(EntityDataError):
    pass


class KeyTypeError(EntityDataError, TypeError):
    """An entity key column has a type that cannot be safely cast to the entity's type."""


class FeatureNameCollisionError(BanquetError, ValueError):
    """Two requested features would produce the same output column."""


class SchemaMismatch(BanquetError, ValueError):
    """Data does not match the schema it is written or read under."""


class DataSourceError(BanquetError):
    """A data source cannot be read as declared."""


class SourceFileNotFound(DataSourceError, FileNotFoundError):
    pass


class SourceColumnMissing(DataSourceError, SchemaMismatch):
    pass


class SourceAccessDenied(DataSourceError, PermissionError):
    """The data source's storage (an S3 bucket or object) refused access with the credentials
    in use; the message names the path (``s3://bucket/key``), never the credentials."""


class SourceUnreachable(DataSourceError, ConnectionError):
    """The data source's storage endpoint (an S3 endpoint) cannot be reached; the message names
    the path and the endpoint. The operation can be retried."""


class RequestDataNotFound(EntityDataError):
    """An on-demand feature needs a request field that was not provided."""


# --- on-demand feature views -------------------------------------------------------------


class FunctionNotSerializable(DefinitionError):
    """An on-demand feature view's function cannot be stored in the registry."""


class OnDemandFunctionError(BanquetError, RuntimeError):
    """An on-demand feature view's function raised, or cannot be rebuilt in this process."""


class OnDemandOutputError(SchemaMismatch):
    """An on-demand feature view's function returned a missing or wrongly typed column."""


class UntrustedFunction(OnDemandFunctionError):
    """The registry holds an on-demand function whose source this process does not trust
    (not loaded from the repo, not pinned by hash, ``trust_registry_code`` not set); it was
    not run."""


# --- values written ----------------------------------------------------------------------


class InvalidTimestamp(BanquetError, ValueError):
    """An event or created timestamp cannot be stored: out of the representable range, or
    further in the future than ``online_store.max_future_skew`` allows. Nothing was written."""


class ValueOutOfRange(SchemaMismatch):
    """A value does not fit the feature's declared type (``1e300`` into ``Float32``); nothing
    was written."""


class NullKeyError(EntityDataError):
    """An entity key is null in rows to be written or read; nothing was written."""


# --- stores ------------------------------------------------------------------------------


class StoreError(BanquetError):
    """An online or offline store failed."""


class StoreUnavailable(StoreError, ConnectionError):
    """A store server cannot be reached; the operation can be retried."""


class StoreTimeout(StoreUnavailable, TimeoutError):
    """A store did not answer within the request's deadline; the operation can be retried."""


# --- kernels (the Rust extension raises these) --------------------------------------------


class KernelError(BanquetError, ValueError):
    """A Rust kernel refused its input (mismatched lengths or key types, a null where none
    may be); the message names the column. Also ``banquet._core.KernelError``."""


class KernelTypeError(KernelError, TypeError):
    """A Rust kernel got a column of a type it does not handle; the message names the column
    and the types it takes."""


class CorruptDataError(KernelError):
    """A stored value cannot be decoded under the feature view's current schema (the view
    changed since it was materialized, or the bytes are damaged): re-materialize the view.
    Also ``banquet._core.CorruptDataError``."""


# --- resources ---------------------------------------------------------------------------


class ResourceExhausted(BanquetError, MemoryError):
    """An operation needed more memory than the process may use; it names the operation and
    the size it needed. Nothing was written; retry with less data per call or more memory."""


# --- Feast's names -----------------------------------------------------------------------
# Code written against Feast catches ``feast.errors.X``: each of Feast's names is an alias of
# the class banquet raises for the same failure, or (where banquet had none) a subclass.

FeastError = BanquetError
FeastObjectNotFoundException = NotFoundError
EntityNotFoundException = EntityNotFound
FeatureViewNotFoundException = FeatureViewNotFound
FeatureServiceNotFoundException = FeatureServiceNotFound
DataSourceNotFoundException = DataSourceNotFound
DataSourceObjectNotFoundException = DataSourceNotFound
PushSourceNotFoundException = DataSourceNotFound
RequestDataNotFoundInEntityDfException = RequestDataNotFound
RequestDataNotFoundInEntityRowsException = RequestDataNotFound
FeastEntityDFMissingColumnsError = MissingJoinKeyError
EntityDFNotDateTime = TimestampColumnError
RegistryInferenceFailure = DefinitionError


class OnDemandFeatureViewNotFound(FeatureViewNotFound):
    """``get_on_demand_feature_view`` found no on-demand view of that name."""


OnDemandFeatureViewNotFoundException = OnDemandFeatureViewNotFound


class ProjectNotFound(NotFoundError):
    """The registry holds no project of that name."""


ProjectNotFoundException = ProjectNotFound


class SavedDatasetNotFound(NotFoundError):
    """No saved dataset of that name (banquet keeps none: saved datasets are not supported)."""


class ValidationReferenceNotFound(NotFoundError):
    """No validation reference of that name (banquet keeps none)."""


class PermissionNotFound(NotFoundError):
    """No permission of that name (banquet's registry holds no permissions)."""


PermissionNotFoundException = PermissionNotFound


class NotSupportedError(BanquetError, NotImplementedError):
    """A Feast ``FeatureStore`` method or argument that needs a service banquet does not have
    (vector search, saved datasets, the UI ...); the message names the method and why. The
    README's "Switching from Feast" section lists them."""


class NotSupportedAttribute(NotSupportedError, AttributeError):
    """A Feast ``FeatureStore`` attribute banquet does not have (``provider``); also an
    ``AttributeError``, so ``hasattr`` and introspection (``inspect.getmembers``) treat it as
    absent instead of failing."""



class StreamError(BanquetError):
    """``banquet ingest`` cannot run: no stream view to ingest, the Kafka client is not
    installed, or the broker refused the consumer's settings; the message names the fix."""


__all__ = [name for name, obj in globals().items() if isinstance(obj, type)]
