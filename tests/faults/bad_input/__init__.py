"""The corpus of bad requests that tests/faults/test_bad_input.py sends, by kind of badness:
credentials and bodies (bodies.py), paths, queries and methods (paths.py), who may act
(access.py), replays and the vendors' routes (vendors.py), over the world of world.py."""
