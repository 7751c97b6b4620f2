"""`make bench`: benchmarks of the concierge against stock Rasa (not tests). See bench/cli.py and
docs/PERFORMANCE.md."""
