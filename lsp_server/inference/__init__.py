"""Local inference: model catalog, GGUF metadata, llama.cpp engine, fit, latency guard."""
