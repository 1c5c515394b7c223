"""What the tests and the benchmarks share: processes, servers, databases, data and models.

The test packages beside this one hold tests and their fixtures; everything that more than one
of them (or bench/) uses lives here.
"""
