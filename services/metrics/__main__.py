"""Entry point: python -m services.metrics"""

from .app import build

if __name__ == "__main__":
    build().main()
