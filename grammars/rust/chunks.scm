; Definitions leo chunks in Rust. Capture names: see leo_lsp/indexing/chunker.py.
; An impl block is a class-like container named by its type, so its functions become methods.
(function_item name: (identifier) @name) @function
(struct_item name: (type_identifier) @name) @class
(enum_item name: (type_identifier) @name) @class
(union_item name: (type_identifier) @name) @class
(trait_item name: (type_identifier) @name) @interface
(impl_item type: [(type_identifier) @name
                  (generic_type type: (type_identifier) @name)
                  (scoped_type_identifier name: (type_identifier) @name)]) @class
(mod_item name: (identifier) @name body: (declaration_list)) @module
(macro_definition name: (identifier) @name) @function
