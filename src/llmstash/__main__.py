"""``python -m llmstash``: the ``llmstash`` command."""

from llmstash._cli import main

if __name__ == "__main__":
    main()
