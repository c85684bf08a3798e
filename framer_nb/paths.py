"""Where the package's data lives: `data/` of a source checkout, or `framer_nb/_data` inside an installed wheel."""

from __future__ import annotations

from pathlib import Path


def _data_root() -> Path:
    checkout = Path(__file__).resolve().parents[1] / "data"
    if (checkout / "degradations").is_dir():
        return checkout  # a clone, or an editable install of one
    packaged = Path(__file__).resolve().parent / "_data"  # pyproject maps data/ to framer_nb/_data in wheels
    if (packaged / "degradations").is_dir():
        return packaged
    raise FileNotFoundError(f"framer_nb's data folder is missing: neither {checkout} nor {packaged} exists; "
                            "reinstall the package")


DATA_ROOT = _data_root()
