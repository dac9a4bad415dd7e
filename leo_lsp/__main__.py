"""`python -m leo_lsp` is `leo-lsp`."""

from leo_lsp.cli import main

if __name__ == "__main__":
    main()
