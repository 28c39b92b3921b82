"""Entry point: python -m services.egress"""

from .app import build

if __name__ == "__main__":
    build().main()
