"""Entry point: python -m services.ingress"""

from .app import main

if __name__ == "__main__":
    main()
