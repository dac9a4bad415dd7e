; Definitions leo chunks in Bash. Capture names: see leo_lsp/indexing/chunker.py.
(function_definition name: (word) @name) @function
