; Definitions leo chunks in Swift. Capture names: see leo_lsp/indexing/chunker.py.
; class_declaration also covers struct, enum, actor and extension declarations.
(protocol_declaration name: (_) @name) @interface
(class_declaration name: (_) @name) @class
(function_declaration name: (_) @name) @function
(init_declaration "init" @name) @method
(deinit_declaration "deinit" @name) @method
