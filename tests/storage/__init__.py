"""Tests of wirelab.storage (a package so that type checkers tell its conftest apart)."""
