; Definitions leo chunks in Go. Capture names: see leo_lsp/indexing/chunker.py.
; @scope names the receiver type so methods read as Type.Method.
(function_declaration name: (identifier) @name) @function
(method_declaration
  receiver: (parameter_list
    (parameter_declaration
      type: [(type_identifier) @scope
             (pointer_type (type_identifier) @scope)
             (generic_type type: (type_identifier) @scope)
             (pointer_type (generic_type type: (type_identifier) @scope))]))
  name: (field_identifier) @name) @method
(type_declaration (type_spec name: (type_identifier) @name type: (interface_type))) @interface
(type_declaration (type_spec name: (type_identifier) @name type: (struct_type))) @class
