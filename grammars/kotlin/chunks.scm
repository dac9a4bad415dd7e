; Definitions leo chunks in Kotlin. Capture names: see leo_lsp/indexing/chunker.py.
; Interfaces are class_declaration nodes with an "interface" keyword: that pattern comes first
; and the first matching pattern wins.
(class_declaration "interface" name: (_) @name) @interface
(class_declaration name: (_) @name) @class
(object_declaration name: (_) @name) @class
(companion_object) @class
(function_declaration name: (_) @name (function_body)) @function
