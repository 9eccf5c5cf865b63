"""triagebot."""
