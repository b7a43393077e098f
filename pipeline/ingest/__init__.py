"""Bring your own events: map CSV / Parquet / JSON-lines files onto the event contract
and append them to the partition log (``churn import``, see ``docs/import.md``)."""

from pipeline.ingest.errors import (
    MappingChangedError,
    MappingError,
    RejectedShareError,
    SourceError,
    StaleLedgerError,
)
from pipeline.ingest.importer import ImportSummary, run_import
from pipeline.ingest.ledger import Ledger, load_profile
from pipeline.ingest.mapping import SourceMapping, load_mapping, parse_mapping

__all__ = ["ImportSummary", "Ledger", "MappingChangedError", "MappingError", "RejectedShareError", "SourceError",
           "SourceMapping", "StaleLedgerError", "load_mapping", "load_profile", "parse_mapping", "run_import"]
