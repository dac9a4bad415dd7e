; Sections leo chunks in Markdown (block grammar): a section per ATX heading, nested by level.
; Capture names: see leo_lsp/indexing/chunker.py.
(section (atx_heading heading_content: (_) @name)) @section
