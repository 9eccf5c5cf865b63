"""The one bound for waiting on a condition in tests.

Tests poll for the condition they need and return the moment it holds, so this bound costs nothing
when things work; it only decides how long a broken test takes to fail. It is generous on purpose:
a slow or loaded CI machine must never turn a correct run into a timeout.
"""

WAIT_S = 120.0
