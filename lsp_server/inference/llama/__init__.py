"""The in-process llama.cpp engine, one module per job.

``engine`` (worker thread, public API, one request start to finish) drives ``context`` (the llama context, its
batch and KV cache), ``decode`` (the token loops, plain and prompt lookup) and ``output`` (tokens to text, stop
strings); ``model`` loads the GGUF file and wraps its vocabulary, ``calibrate`` measures this machine at load,
``log`` routes llama.cpp's logging and ``threads`` picks the default thread count.
"""
