"""Entry point: python -m services.verifier"""

from .app import build

if __name__ == "__main__":
    build().main()
