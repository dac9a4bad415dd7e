; Definitions leo chunks in Python. Capture names: see leo_lsp/indexing/chunker.py.
; A decorated definition is captured whole so decorators stay with their function or class.
(decorated_definition
  definition: (class_definition name: (identifier) @name)) @class
(decorated_definition
  definition: (function_definition name: (identifier) @name)) @function
(class_definition name: (identifier) @name) @class
(function_definition name: (identifier) @name) @function
