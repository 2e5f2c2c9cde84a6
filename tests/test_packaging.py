"""The install is quiet: the license is an SPDX string (the TOML-table form made setuptools print a deprecation
banner several times per install), with a setuptools that reads it."""
import pathlib
import tomllib

PYPROJECT = pathlib.Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_license_is_an_spdx_string_and_setuptools_reads_it():
    meta = tomllib.loads(PYPROJECT.read_text())
    assert meta["project"]["license"] == "BSD-3-Clause"
    assert not any(c.startswith("License ::") for c in meta["project"].get("classifiers", []))  # PEP 639: not both
    assert "setuptools>=77" in meta["build-system"]["requires"]
