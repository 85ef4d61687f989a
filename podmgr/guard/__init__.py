"""The pod's own guard: code that runs inside the pod and terminates it at its limits.

`guard.py` is the program (standard library only: it travels in the pod's start command and
runs with the image's `python3`); `launch.py` builds that start command and its env for a
create, and says when a config makes the guard impossible.
"""
