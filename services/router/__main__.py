"""Entry point: python -m services.router"""

from .app import build

if __name__ == "__main__":
    build().main()
