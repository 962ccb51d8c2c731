"""What Gearshift knows about the languages it parses: one spec per language, its grammar, a bracket lexer.

``languages`` holds the registry (add a language there, plus its grammar in pyproject.toml), ``grammar``
loads and parses with tree-sitter, ``lexer`` tracks brackets outside strings and comments, and ``facts``
reads the syntax tree around a cursor.
"""
