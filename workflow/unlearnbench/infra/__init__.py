"""Machinery that runs the science but is not part of it: lazy imports (a torch-free DAG), the
numerics modes, the warm job runner, the no-op fingerprint, the file sandbox around a method,
the OS wall (Landlock, seccomp) around every job that runs method code,
provenance sidecars and the audit, and the rule scripts' job glue. A reader who adds a method or a
paper never needs to open this package."""
