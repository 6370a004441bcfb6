"""The kernel: values and tools every layer uses and that use nothing above them — results,
specs, the trusted context, part scores, statistics, hashing, signing, crash-safe writes, locks,
the classifiers, lazy imports and telemetry switches."""
