"""eqxpurify's benchmarks: `python -m benchmarks [--quick] [--out FILE]`."""
