"""Fuzz targets and the atheris runner (see README.md); importable for the pytest smoke run."""
