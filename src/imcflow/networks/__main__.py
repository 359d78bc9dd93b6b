"""``python -m imcflow.networks``: regenerate the built-in models' layer-list cache
(:mod:`imcflow.networks.builtin`) by tracing every model (needs torch)."""
from imcflow.networks.builtin import write_cache

if __name__ == "__main__":  # only as a command (test collection imports modules too)
    print(f"wrote {write_cache()}")
