"""Takes checked before commit: duration and silence checks."""
