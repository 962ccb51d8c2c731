"""LSP features: one module per feature, each a small handler registered on the server."""
