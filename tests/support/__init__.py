"""Builders shared by the tests, the benchmarks and the fuzzers: synthetic
kernels, purgatory blobs, BTF blobs and fuzz targets."""
