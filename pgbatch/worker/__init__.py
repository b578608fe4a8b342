"""The worker and its parts (claiming, running, lease keeping, settling, maintenance)."""
