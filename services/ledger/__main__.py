"""Entry point: python -m services.ledger"""

from .app import build

if __name__ == "__main__":
    build().main()
