; Definitions leo chunks in C++. Capture names: see leo_lsp/indexing/chunker.py.
; A name like Foo::bar is split into scope Foo and symbol bar by the chunker.
(template_declaration
  (class_specifier name: (_) @name body: (_))) @class
(template_declaration
  (struct_specifier name: (_) @name body: (_))) @class
(template_declaration
  (function_definition
    declarator: [(function_declarator declarator: (_) @name)
                 (pointer_declarator declarator: (function_declarator declarator: (_) @name))
                 (reference_declarator (function_declarator declarator: (_) @name))])) @function
(function_definition
  declarator: [(function_declarator declarator: (_) @name)
               (pointer_declarator declarator: (function_declarator declarator: (_) @name))
               (reference_declarator (function_declarator declarator: (_) @name))]) @function
(class_specifier name: (_) @name body: (_)) @class
(struct_specifier name: (_) @name body: (_)) @class
(union_specifier name: (_) @name body: (_)) @class
(enum_specifier name: (_) @name body: (_)) @class
(type_definition
  type: [(struct_specifier body: (_)) (union_specifier body: (_)) (enum_specifier body: (_))]
  declarator: (type_identifier) @name) @class
(namespace_definition name: (_) @name) @module
