"""pytest plugin for wirelab (entry point ``pytest11``): a thin layer over wirelab.testing."""
