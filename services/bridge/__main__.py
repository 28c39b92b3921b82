"""Entry point: python -m services.bridge"""

from .app import build

if __name__ == "__main__":
    build().main()
