-- Generated from lsp_server/syntax/languages.py by `python -m lsp_server.syntax.languages`; do not edit.
-- The languageIds (Neovim filetypes) the server parses: the plugin's default `filetypes`.
return {
  filetypes = {
    'python',
    'javascript',
    'javascriptreact',
    'jsx',
    'typescript',
    'typescriptreact',
    'tsx',
    'go',
    'rust',
    'c',
    'cpp',
    'c++',
    'cuda-cpp',
    'java',
  },
}
