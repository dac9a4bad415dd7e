; Definitions leo chunks in Ruby. Capture names: see leo_lsp/indexing/chunker.py.
(module name: (_) @name) @module
(class name: (_) @name) @class
(singleton_class value: (_) @name) @class
(method name: (_) @name) @function
(singleton_method name: (_) @name) @function
