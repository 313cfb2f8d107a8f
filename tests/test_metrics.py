from __future__ import annotations

import aiohttp
from prometheus_client import Counter

from blocwatch import __version__
from blocwatch.core.metrics import OpsServer, new_registry


async def test_ops_server_serves_metrics_health_and_readiness() -> None:
    registry = new_registry("test")
    Counter("blocwatch_test_items_total", "items", registry=registry).inc(3)
    ready = False
    async with (
        OpsServer(registry, "127.0.0.1", 0, ready=lambda: ready) as server,
        aiohttp.ClientSession() as http,
    ):
        async with http.get(f"{server.url}/metrics") as response:
            body = await response.text()
        assert f'blocwatch_build_info{{service="test",version="{__version__}"}} 1.0' in body
        assert "blocwatch_test_items_total 3.0" in body
        async with http.get(f"{server.url}/healthz") as response:
            assert response.status == 200
        async with http.get(f"{server.url}/readyz") as response:
            assert response.status == 503
        ready = True
        async with http.get(f"{server.url}/readyz") as response:
            assert response.status == 200
    assert registry.get_sample_value("blocwatch_test_items_total") == 3
