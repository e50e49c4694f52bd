"""Tests of the metadata store (the db contract suite: every backend)."""
