"""The registry of dataset sources: each scans a dataset layout and yields :class:`~mesm_core.data.scan.ClipJob` s.

Names (as on the ``mesm_core.preprocess`` command line): ``iemocap`` (raw release),
``iemocap-processed`` (the authors' processed folders), ``mosei`` (raw CMU-MOSEI release),
``mosei-processed``, ``folder`` (``labels.csv``), ``synthetic`` (the embedded synthetic set).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from mesm_core.data import folder, iemocap, mosei
from mesm_core.data.errors import DataSourceError
from mesm_core.data.scan import SourceScan
from mesm_core.data.synthetic.source import synthetic_source

BUILDERS: dict[str, Callable[..., SourceScan]] = {
    "iemocap": iemocap.iemocap_raw_source,
    "iemocap-processed": iemocap.iemocap_processed_source,
    "mosei": mosei.mosei_raw_source,
    "mosei-processed": mosei.mosei_processed_source,
    "folder": folder.folder_source,
    "synthetic": synthetic_source,
}
SOURCE_NAMES = tuple(BUILDERS)


def build_source(name: str, root: str | Path, **options: Any) -> SourceScan:
    """Scan dataset ``name`` at ``root`` → SourceScan. Options go to the builder (e.g. seed, n_clips)."""
    if name not in BUILDERS:
        raise DataSourceError(f"unknown dataset {name!r}; choose one of {', '.join(SOURCE_NAMES)}")
    return BUILDERS[name](root, **options)


__all__ = ["BUILDERS", "SOURCE_NAMES", "build_source"]
