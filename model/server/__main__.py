"""`python -m scones.model.server`, the same command as `scones serve`."""
from .cli import serve

if __name__ == "__main__":
    serve(prog_name="python -m scones.model.server")
