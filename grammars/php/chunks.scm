; Definitions leo chunks in PHP. Capture names: see leo_lsp/indexing/chunker.py.
(namespace_definition name: (namespace_name) @name body: (compound_statement)) @module
(class_declaration name: (name) @name) @class
(trait_declaration name: (name) @name) @class
(enum_declaration name: (name) @name) @class
(interface_declaration name: (name) @name) @interface
(function_definition name: (name) @name) @function
(method_declaration name: (name) @name body: (_)) @method
