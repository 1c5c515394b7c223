"""The `proctorq` command: run the parts, look at the queues, replay what failed.

`main.py` parses the command line and calls one plain function per subcommand; the modules
beside it hold those functions and never import `main`.
"""
