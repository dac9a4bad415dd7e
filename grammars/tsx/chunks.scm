; Definitions leo chunks in TSX (same grammar family as TypeScript). Capture names: see leo_lsp/indexing/chunker.py.
(interface_declaration name: (type_identifier) @name) @interface
(type_alias_declaration name: (type_identifier) @name) @interface
(class_declaration name: (type_identifier) @name) @class
(abstract_class_declaration name: (type_identifier) @name) @class
(enum_declaration name: (identifier) @name) @class
(internal_module name: (_) @name) @module
(module name: (_) @name) @module
(function_declaration name: (identifier) @name) @function
(generator_function_declaration name: (identifier) @name) @function
(function_signature name: (identifier) @name) @function
(method_definition name: (_) @name) @method
(public_field_definition
  name: (_) @name
  value: [(arrow_function) (function_expression)]) @method
(lexical_declaration
  (variable_declarator
    name: (identifier) @name
    value: [(arrow_function) (function_expression) (generator_function) (class)])) @function
(variable_declaration
  (variable_declarator
    name: (identifier) @name
    value: [(arrow_function) (function_expression) (generator_function) (class)])) @function
