"""The console's pages, one module per area. Each module has ``routes`` (an aiohttp
RouteTableDef); views parse the request, call domain code and render a template."""
