"""The only code that may send anything off the machine: router, redaction, anthropic client, cost meter."""
