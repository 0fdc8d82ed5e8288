"""Metric sinks (CSV, TensorBoard, ...) behind one logger, and the live progress display."""
