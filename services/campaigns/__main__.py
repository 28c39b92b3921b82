"""Entry point: python -m services.campaigns"""

from .app import build

if __name__ == "__main__":
    build().main()
