"""Entry point: python -m services.ingress"""

from .app import build

if __name__ == "__main__":
    build().main()
